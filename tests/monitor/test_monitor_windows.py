"""Monitoring on the windows users actually have: unreadable files, labels written as floats,
absent columns, values that are not finite numbers, a handful of rows, batch-scored rows.

The model is trained on breast cancer with the target as 0/1 integers (sklearn's own
encoding), so its classes are ``['0', '1']``: the case where pandas writes labels as floats.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.datasets import load_breast_cancer

from mlcycle import Project
from mlcycle.monitor import monitor
from mlcycle.predictions import LoggedBatch, PredictionLog
from mlcycle.registry import load, register
from mlcycle.train import train

MLCYCLE = str(Path(sys.executable).with_name("mlcycle"))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = Path(tmp_path_factory.mktemp("windows")) / "proj"
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    with Project.init(root, name="proj") as p:
        p.datasets.add(frame, name="cancer01", target="target")
        run = train(p, data="cancer01", overrides={"max_epochs": 10}).run_id
        register(p, run, "cancer", alias="champion")
        yield p


def _split(project: Project, part: str) -> pd.DataFrame:
    return project.datasets.load_split("cancer01@1")[part].to_pandas()


def _cli(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLCYCLE, *args], cwd=project.root, capture_output=True, text=True, timeout=120
    )


def _log(
    project: Project,
    frame: pd.DataFrame,
    source: str,
    tag: str,
    *,
    labelled: bool = False,
    version: int = 1,
) -> list[str]:
    """Write what a server (or a batch job) would log for ``frame``'s rows."""
    model = load("cancer@champion", project=project)
    feeds = model.feeds(pa.Table.from_pandas(frame.drop(columns=["target"]), preserve_index=False))
    answer = model.run(feeds)
    ids = [f"{tag}-{i}" for i in range(len(frame))]
    log = PredictionLog(project.root / ".mlcycle" / "log")
    log.append(
        LoggedBatch(
            "cancer",
            version,
            source,
            ids,
            feeds,
            1.0,
            labels=answer.labels if source != "error" else None,
            probabilities=answer.probabilities if source != "error" else None,
        )
    )
    if labelled:
        log.feedback(zip(ids, frame["target"].astype(str), strict=True))
    log.close()
    return ids


def test_an_empty_file_and_a_repeated_column_are_one_line_errors(
    project: Project, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    done = _cli(project, "monitor", "cancer@champion", "--current", str(empty))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("error: current data") and done.stderr.count("\n") == 1
    assert "empty (0 bytes)" in done.stderr

    twice = tmp_path / "twice.csv"
    frame = _split(project, "validation")
    frame.insert(1, "mean_radius_again", frame["mean_radius"])
    text = frame.to_csv(index=False).replace("mean_radius_again", "mean_radius", 1)
    twice.write_text(text)
    done = _cli(project, "monitor", "cancer@champion", "--current", str(twice))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "column 'mean_radius' appears 2 times" in done.stderr


def test_labels_written_as_floats_count_as_their_classes(project: Project, tmp_path: Path) -> None:
    frame = _split(project, "validation")
    frame["target"] = frame["target"].astype(float)
    frame.loc[frame.index[:10], "target"] = np.nan  # a partly labelled window
    path = tmp_path / "partly-labelled.csv"
    frame.to_csv(path, index=False)
    assert "1.0" in path.read_text()  # what pandas writes for an int column with gaps
    result = monitor(project, "cancer@champion", current=path)
    assert result.performance is not None and result.performance.n == len(frame) - 10
    assert result.quality.unusable_labels == 0
    assert result.target is not None  # target drift sees the labels as classes too


def test_a_row_with_non_finite_values_is_a_finding_not_a_failure(
    project: Project, tmp_path: Path
) -> None:
    frame = _split(project, "validation")
    _log(project, frame, "serve", "fine", labelled=True)
    # what a server logged before it refused such rows: an infinite input, NaN answers
    log = PredictionLog(project.root / ".mlcycle" / "log")
    model = load("cancer@champion", project=project)
    feeds = model.feeds(
        pa.Table.from_pandas(frame.drop(columns=["target"]).head(1), preserve_index=False)
    )
    feeds["mean_radius"] = np.full_like(feeds["mean_radius"], np.inf)
    log.append(
        LoggedBatch(
            "cancer",
            1,
            "serve",
            ["bad-0"],
            feeds,
            1.0,
            labels=np.array(["0"], dtype=object),
            probabilities=np.full((1, 2), np.nan, dtype=np.float32),
        )
    )
    log.feedback([("bad-0", "1")])
    log.close()
    n = len(frame) + 1
    result = monitor(project, "cancer@champion", last=n)
    quality = result.quality
    assert quality.rows == n and quality.non_finite_rows == 1
    assert quality.non_finite == {"mean_radius": 1, "probabilities": 1}
    assert quality.excluded_rows == 1
    assert result.performance is not None and result.performance.n == len(frame)
    assert result.prediction is not None and result.estimated is not None
    assert any("not finite numbers" in note for note in result.report["notes"])
    done = _cli(project, "monitor", "cancer@champion", "--last", str(n), "--json")
    assert done.returncode in (0, 3), done.stderr
    assert json.loads(done.stdout)["data_quality"]["non_finite"]["probabilities"] == 1

    # the same in a file given with --current: the model answers NaN for the infinite row
    path = tmp_path / "infinite.csv"
    bad = frame.copy()
    bad.loc[bad.index[0], "mean_radius"] = np.inf
    bad.to_csv(path, index=False)
    scored = monitor(project, "cancer@champion", current=path)
    assert scored.quality.non_finite["mean_radius"] == 1
    assert scored.performance is not None


def test_an_absent_or_empty_input_is_an_alert_and_the_rest_is_computed(
    project: Project, tmp_path: Path
) -> None:
    frame = _split(project, "validation")
    path = tmp_path / "absent.csv"
    frame.drop(columns=["mean_radius"]).to_csv(path, index=False)
    result = monitor(project, "cancer@champion", current=path)
    kinds = {a.kind: a for a in result.alerts}
    assert "data_quality" in kinds and "mean_radius" in kinds["data_quality"].message
    assert "absent" in kinds["data_quality"].message
    assert result.quality.absent == ("mean_radius",)
    assert "mean_radius" not in {c.column for c in result.features.columns}
    assert len(result.features.columns) == 29 and result.features.drift is not None
    assert result.performance is not None and result.performance.n == len(frame)

    path = tmp_path / "empty-column.csv"
    frame.assign(mean_texture=np.nan).to_csv(path, index=False)
    result = monitor(project, "cancer@champion", current=path)
    assert result.quality.empty == ("mean_texture",) and result.quality.absent == ()
    assert any("with no value" in a.message for a in result.alerts)
    done = _cli(project, "monitor", "cancer@champion", "--current", str(path))
    assert done.returncode == 3 and "alert: data quality" in done.stdout, done.stderr


def test_too_few_rows_give_no_drift_or_ood_verdict_and_the_window_size_is_shown(
    project: Project, tmp_path: Path
) -> None:
    test = _split(project, "test")
    frame = pd.concat([test[test["target"] == 0].head(1), test[test["target"] == 1].head(1)])
    features = [c for c in frame.columns if c != "target"]
    frame[features] = frame[features] * 3  # far outside the training ranges
    path = tmp_path / "two.csv"
    frame.to_csv(path, index=False)
    html = tmp_path / "two.html"
    result = monitor(project, "cancer@champion", current=path, html=html)
    assert result.ood is not None and result.ood["share"] == 1.0
    assert result.ood["alert"] is None and result.ood["min_rows"] == 30
    assert result.features.drift is None
    assert all(c.drift is None and c.min_rows == 30 for c in result.features.columns)
    assert not any(a.kind in ("ood", "dataset_drift", "feature_drift") for a in result.alerts)
    assert result.to_dict()["window"]["rows"] == 2
    assert "<strong>2 rows</strong>" in html.read_text()
    done = _cli(project, "monitor", "cancer@champion", "--current", str(path))
    assert "window: " in done.stdout and "2 rows" in done.stdout, done.stdout
    assert "no verdict" in done.stdout


def test_the_terminal_shows_the_adjusted_p_value_and_its_method(
    project: Project, tmp_path: Path
) -> None:
    path = tmp_path / "validation.csv"
    _split(project, "validation").to_csv(path, index=False)
    done = _cli(project, "monitor", "cancer@champion", "--current", str(path))
    assert done.returncode == 0, done.stderr
    assert "adjusted p" in done.stdout and "Benjamini-Hochberg over 30 p-values" in done.stdout
    assert f"window: {path}, 86 rows, 86 labelled\n" in done.stdout


def test_batch_scored_rows_are_monitored_and_shadow_and_error_rows_never(
    project: Project,
) -> None:
    # the same run as a second version: its log folder holds exactly what this test writes
    run = project.store.registry.get("cancer@champion").run_id
    assert run is not None
    version = register(project, run, "cancer").version
    rows = _split(project, "train")
    _log(project, rows.head(40), "serve", "s", version=version)
    _log(project, rows.iloc[40:140], "batch", "b", version=version)
    _log(project, rows.iloc[140:170], "shadow", "h", version=version)  # mirrored, never answered
    _log(project, rows.iloc[170:175], "error", "e", version=version)  # failed requests
    ref = f"cancer@{version}"
    every = monitor(project, ref)
    assert every.features.n_current == 140
    assert every.window["rows"] == 140 and every.window["log_sources"] == ["serve", "batch"]
    assert monitor(project, ref, source="serve").window["rows"] == 40
    assert monitor(project, ref, source="batch", last=30).window["rows"] == 30
    newest = monitor(project, ref, last=120)  # the newest rows of both sources together
    assert newest.window["rows"] == 120
    done = _cli(project, "monitor", ref, "--source", "batch", "--json")
    assert done.returncode in (0, 3), done.stderr
    assert json.loads(done.stdout)["window"]["rows"] == 100
