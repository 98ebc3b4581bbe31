"""``mlcycle audit`` end to end: every audit that applies, one offline report, the card, the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlcycle import Project
from mlcycle.audit import audit, latest_audit_parts
from mlcycle.errors import SpecError
from tests.audit.test_explain_errors import _mlcycle

pytestmark = pytest.mark.slow


def _card(project: Project, ref: str) -> str:
    files = project.store.registry.get(ref).files
    return project.artifacts.read_bytes(files["card.md"]).decode()


def _section(card: str, heading: str) -> str:
    return card.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]


def test_the_cli_runs_every_audit_that_applies_and_rewrites_the_card(
    explained: Project, tmp_path: Path
) -> None:
    report = tmp_path / "alone" / "audit.html"
    done = _mlcycle(
        "audit",
        "cancer@1",
        "--eps",
        "0.1",
        "--eps",
        "0.5",
        "--report",
        str(report),
        "--json",
        cwd=explained.root,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    assert found["kinds"] == ["explain", "robustness"]
    assert "sensitive" in found["skipped"]["fairness"]  # breast_cancer has no sensitive column
    figures = found["figures"]
    assert set(figures["explain.importance"]) == set(
        explained.store.registry.get("cancer@1").signature["inputs"][i]["name"] for i in range(30)
    )
    assert figures["explain.completeness"]["max relative error"] <= 1e-3
    clean = figures["robustness.clean"]["accuracy"]
    assert figures["robustness.pgd@0.5"]["accuracy"] <= figures["robustness.pgd@0.1"]["accuracy"]
    assert figures["robustness.pgd@0.1"]["accuracy"] <= clean
    card = _card(explained, "cancer@1")
    assert "Permutation importance" in _section(card, "Explainability")
    assert "Not yet audited" not in _section(card, "Robustness")
    assert "Not yet audited" in _section(card, "Fairness")

    # The report stands alone: opened with nothing beside it, every chart drawn, offline.
    from tests.e2e.test_report_browser import _chromium

    dom = _chromium("--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('class="main-svg"') >= 3  # importance, attributions, attacks
    assert "Permutation importance" in dom.stdout and "PGD" in dom.stdout
    page = report.read_text()
    assert page.count("plotly.js v") <= 1 and "<script src=" not in page  # inlined once


def test_an_audit_of_one_kind_keeps_the_cards_other_sections(
    explained: Project, tmp_path: Path
) -> None:
    audit(explained, "digits@1", kinds=["explain"], options={"explain": {"rows": [0]}})
    first = _section(_card(explained, "digits@1"), "Explainability")
    later = audit(
        explained, "digits@1", kinds=["robustness"], options={"robustness": {"eps": (0.1,)}}
    )
    card = _card(explained, "digits@1")
    assert _section(card, "Explainability") == first  # from the earlier audit
    assert "Not yet audited" not in _section(card, "Robustness")
    version = explained.store.registry.get("digits@1")
    assert set(latest_audit_parts(explained, version)) == {"explain", "robustness"}
    assert later.record is not None and later.record.kinds == ("robustness",)
    assert explained.store.registry.audits(version)[0] == later.record
    stored = json.loads(explained.artifacts.read_bytes(later.record.document_sha256))
    assert stored["figures"] == later.to_dict()["figures"]


def test_an_audit_asked_for_that_cannot_run_is_an_error(explained: Project) -> None:
    with pytest.raises(SpecError, match="no sensitive column"):
        audit(explained, "cancer@1", kinds=["fairness"])
    with pytest.raises(SpecError, match="audit kind 'bias' is not one of explain, fairness"):
        audit(explained, "cancer@1", kinds=["bias"])
    with pytest.raises(SpecError, match="options for 'fairness', which this audit does not run"):
        audit(explained, "cancer@1", kinds=["explain"], options={"fairness": {"min_group": 5}})
    bad = _mlcycle("audit", "cancer@1", "--explain", "--eps", "0.1", cwd=explained.root)
    assert bad.returncode != 0
    assert "--eps is an option of the robustness audit, which is not asked for" in bad.stderr
