"""Bad input to the explainers: one line naming the field, the value and what is allowed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlcycle import Project
from mlcycle.audit import explain
from mlcycle.errors import DataError, SpecError

pytestmark = pytest.mark.slow  # the session's models train in about 20 s

MLCYCLE = str(Path(sys.executable).with_name("mlcycle"))


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_steps_below_one(explained: Project) -> None:
    with pytest.raises(SpecError) as caught:
        explain(explained, "mixed@1", [0], steps=0)
    assert _one_line(caught) == "steps: 0 is not >= 1"


def test_an_unknown_method(explained: Project) -> None:
    with pytest.raises(SpecError) as caught:
        explain(explained, "mixed@1", [0], method="lime")
    assert _one_line(caught) == "method: 'lime' is not one of ig, shap, auto"


def test_a_baseline_row_missing_columns(explained: Project) -> None:
    with pytest.raises(SpecError) as caught:
        explain(explained, "mixed@1", [0], baseline={"x": 0.0, "z": 1.0})
    assert _one_line(caught) == (
        "baseline: the row lacks column 'member' (and 1 more); "
        "a baseline row gives every input column: x, z, member, city"
    )
    with pytest.raises(SpecError, match="baseline: 'zero' is not 'mean'"):
        explain(explained, "mixed@1", [0], baseline="zero")
    with pytest.raises(SpecError, match=r"baseline: column 'x': value 'abc' at row 0"):
        explain(
            explained, "mixed@1", [0], baseline={"x": "abc", "z": 0, "member": 1, "city": "nice"}
        )


def test_a_rows_file_missing_columns(explained: Project, tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("x,z,member\n0.5,1.0,true\n")
    with pytest.raises(DataError) as caught:
        explain(explained, "mixed@1", str(path))
    assert _one_line(caught) == (
        "rows: missing input column 'city'; the model takes: x, z, member, city"
    )


def test_row_indices_outside_the_test_split(explained: Project) -> None:
    n = explained.datasets.load_split("mixed@1")["test"].num_rows
    with pytest.raises(SpecError) as caught:
        explain(explained, "mixed@1", [0, n])
    assert _one_line(caught) == f"rows: index {n} is not a row of the test split (0 to {n - 1})"


def test_a_target_that_is_not_a_class(explained: Project) -> None:
    with pytest.raises(SpecError) as caught:
        explain(explained, "mixed@1", [0], target="maybe")
    assert _one_line(caught) == "target: 'maybe' is not a class of mixed@1; expected one of no, yes"


def _mlcycle(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "COLUMNS": "160", "PYTHONPATH": src}
    return subprocess.run(
        [MLCYCLE, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env
    )


def test_the_cli_prints_json_writes_a_report_and_refuses_in_one_line(
    explained: Project, tmp_path: Path
) -> None:
    report = tmp_path / "explain.html"
    done = _mlcycle(
        "explain", "mixed@1", "--row-index", "0", "--row-index", "2", "--json",
        "--report", str(report), cwd=explained.root,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["importance"]["model"] == "mixed@1"
    assert [r["index"] for r in out["explanation"]["rows"]] == [0, 2]
    assert set(out["explanation"]["rows"][0]["attributions"]) == {"x", "z", "member", "city"}
    page = report.read_text()
    assert "Permutation importance" in page and "Integrated Gradients" in page

    shown = _mlcycle("explain", "mixed@1", "--row-index", "1", cwd=explained.root)
    assert shown.returncode == 0, shown.stderr
    assert "permutation importance, mixed@1" in shown.stdout
    assert "row 1:" in shown.stdout and "completeness error" in shown.stdout

    bad = _mlcycle("explain", "mixed@1", "--metric", "rmse", cwd=explained.root)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "error: metric: 'rmse' is not a classification metric; expected one of accuracy, "
        "balanced_accuracy, precision_macro, recall_macro, f1_macro, roc_auc, pr_auc, "
        "log_loss, ece"
    ]
