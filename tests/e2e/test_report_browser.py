"""The run report opens offline in a real browser and draws its plots."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from mlcycle import Project
from mlcycle.train import train
from tests.evaluate.html_tables import section_tables

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=5000",
]


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None, "Chromium is needed: apt-get install chromium (.ci/run does)"
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.mark.slow
def test_the_report_renders_its_plots_offline(tmp_path: Path) -> None:
    with Project.init(tmp_path / "proj", name="proj") as project:
        outcome = train(
            project,
            data="sklearn:breast_cancer",
            overrides={"max_epochs": 8, "evaluate.slices": ["mean_radius"]},
        )
        slices = outcome.summary["slices"]["mean_radius"]
    # A copy in a fresh folder: nothing beside the file can help it render.
    page = tmp_path / "alone" / "report.html"
    page.parent.mkdir()
    shutil.copy(outcome.report, page)

    dom = _chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    # Plotly draws each figure as an SVG with class main-svg once its script has run.
    assert html.count('class="main-svg"') >= 5
    for title in ("Learning curves", "Confusion matrix", "Calibration"):
        assert title in html
    for name in ("malignant", "benign"):
        assert name in html
    # The slice table as the browser holds it: a numeric column in quantile bins,
    # each row with the numbers evaluation computed (not a row of dashes).
    [table] = section_tables(html, "By slice")
    assert table[0][:3] == ["mean_radius", "n", "accuracy"]
    assert [row[0] for row in table[1:]] == list(slices)
    for row in table[1:]:
        assert row[1] == str(slices[row[0]]["n"])
        assert row[2] == f"{slices[row[0]]['accuracy']:.4f}"
    assert len(slices) == 4
    assert "mean_radius is numeric: cut into 4 quantile bins" in html

    shot = tmp_path / "report.png"
    done = _chromium("--window-size=1280,2000", f"--screenshot={shot}", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.stat().st_size > 50_000  # a page of drawn plots, not a blank one
