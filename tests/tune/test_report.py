"""The study report opens offline in headless Chromium and draws its Plotly figures.

A probe script is put at the top of a copy of the page: a Content Security
Policy that allows nothing but the page's own inline code and data: URLs
(so any request for a file, a CDN or a font is a recorded violation), a
hook on errors and console.error, and, once the page has loaded, what
Plotly drew, written into the DOM that ``--dump-dom`` prints.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mlcycle import Project
from mlcycle.tune import tune
from tests.e2e.test_report_browser import _chromium
from tests.tune._studies import QUICK

PROBE = """
<meta http-equiv="Content-Security-Policy" content="default-src 'none';
 script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:;
 font-src data:">
<script>
window.__probe = {errors: [], blocked: []};
window.addEventListener("error", e => window.__probe.errors.push(String(e.message)));
window.addEventListener("unhandledrejection", e => window.__probe.errors.push(String(e.reason)));
document.addEventListener("securitypolicyviolation", e => window.__probe.blocked.push(e.blockedURI));
const consoleError = console.error;
console.error = (...args) => { window.__probe.errors.push(args.join(" ")); consoleError(...args); };
window.addEventListener("load", () => setTimeout(() => {
  const plots = [...document.querySelectorAll(".js-plotly-plot")];
  const result = Object.assign(window.__probe, {
    plots: plots.length,
    drawn: plots.filter(p => p.querySelector("svg.main-svg")).length,
    resources: performance.getEntriesByType("resource").map(r => r.name),
    figures: plots.map(p => ({
      title: p.closest("section").querySelector("h2").textContent,
      traces: (p.data || []).map(t => ({name: t.name || "", dash: (t.line || {}).dash || ""})),
      dashed: [...p.querySelectorAll("path.js-line")]
        .filter(l => (l.style.strokeDasharray || "none") !== "none").length,
    })),
  });
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
}, 500));
</script>
"""


@pytest.mark.slow  # a 4-trial study and Chromium: 15-40 s
def test_the_study_report_draws_offline_with_pruned_trials_marked(tmp_path: Path) -> None:
    with Project.init(tmp_path / "proj", name="proj") as project:
        summary = tune(
            project, data="sklearn:iris", name="report", n_trials=4, seed=0, overrides=QUICK
        )
    assert summary.trials["pruned"] >= 1 and summary.trials["complete"] >= 2
    assert summary.report is not None
    # A copy alone in a fresh folder: nothing beside the file can help it render.
    page = tmp_path / "alone" / "study.html"
    page.parent.mkdir()
    html = Path(summary.report).read_text()
    page.write_text(html.replace("<head>", "<head>" + PROBE, 1))

    dom = _chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert found is not None, dom.stdout[-2000:]
    probe = json.loads(
        found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    )

    assert probe["errors"] == [] and probe["blocked"] == []
    assert probe["resources"] == []  # no request at all: plotly.js and the data are inline
    titles = [f["title"] for f in probe["figures"]]
    for expected in (
        "Optimisation history",
        "Validation curve of every trial (pruned trials end early)",
        "Parallel coordinates",
    ):
        assert expected in titles, titles
    assert probe["plots"] == len(titles) >= 3
    assert probe["drawn"] == probe["plots"]  # each figure's SVG was drawn by plotly.js

    [curves] = [f for f in probe["figures"] if f["title"].startswith("Validation curve")]
    pruned = [t for t in curves["traces"] if t["name"].endswith("(pruned)")]
    assert len(pruned) == summary.trials["pruned"]
    assert all(t["dash"] == "dot" for t in pruned)
    assert len(curves["traces"]) == summary.trials["complete"] + summary.trials["pruned"]
    assert curves["dashed"] == len(pruned)  # drawn dotted: the marks reach the SVG
