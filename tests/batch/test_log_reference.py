"""A batch job logs its rows by reference to the input file, not as a second copy of it.

Monitoring reads the inputs through the reference and must see exactly what a
copy would have shown it; an input that is gone or has changed is said and its
rows are left out, never read wrong.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_breast_cancer

from mlcycle import Project
from mlcycle.batch import score_file
from mlcycle.errors import DataError, NotFoundError
from mlcycle.monitor import monitor
from mlcycle.predictions import REF_INPUT, REF_ROW, PredictionLog
from mlcycle.registry import register
from mlcycle.train import train


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = Path(tmp_path_factory.mktemp("byref")) / "proj"
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    with Project.init(root, name="proj") as p:
        p.datasets.add(frame, name="cancer", target="target")
        run = train(p, data="cancer", overrides={"max_epochs": 3}, quiet=True).run_id
        register(p, run, "cancer", alias="champion")
        yield p


def _rows(tmp: Path, kind: str, name: str = "rows") -> Path:
    frame = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame.insert(0, "patient_id", [f"p{i}" for i in range(len(frame))])
    frame.loc[3, "mean_radius"] = None  # a missing value travels through the reference too
    path = tmp / f"{name}.{kind}"
    if kind == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False, row_group_size=100)
    return path


def _version(project: Project) -> str:
    """A fresh version of the same run: its log folder holds only what this test writes."""
    run = project.store.registry.get("cancer@champion").run_id
    assert run is not None
    return register(project, run, "cancer").ref


def _log(project: Project, ref: str) -> pd.DataFrame:
    name, version = ref.split("@")
    log = PredictionLog(project.root / ".mlcycle" / "log")
    try:
        return log.read(name, version=int(version)).to_pandas()
    finally:
        log.close()


def _close(a: Any, b: Any, path: str = "") -> None:
    """``a`` and ``b`` equal, their floats within 1e-12."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-12, (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_the_log_holds_references_and_the_input_is_recorded(
    project: Project, tmp_path: Path
) -> None:
    ref = _version(project)
    path = _rows(tmp_path, "parquet")
    score_file(ref, path, tmp_path / "out.parquet", project=project, chunk_rows=128, workers=2)
    logged = _log(project, ref)
    assert len(logged) == 569
    assert not [c for c in logged.columns if c.startswith("in.")]  # no second copy
    assert sorted(logged[REF_ROW]) == list(range(569))
    [input_id] = logged[REF_INPUT].unique()
    record = json.loads((project.root / ".mlcycle/log/inputs" / f"{input_id}.json").read_text())
    [file] = record["files"]
    assert file["file"] == str(path.resolve()) and file["rows"] == 569
    assert file["size"] == path.stat().st_size and len(file["edges_sha256"]) == 64


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_monitoring_by_reference_equals_monitoring_a_copy(
    project: Project, tmp_path: Path, kind: str
) -> None:
    path = _rows(tmp_path, kind)
    copied, referenced = _version(project), _version(project)
    for ref, how in ((copied, "copy"), (referenced, "reference")):
        score_file(
            ref, path, tmp_path / f"{how}.parquet", project=project, chunk_rows=200, log_inputs=how
        )
    assert any(c.startswith("in.") for c in _log(project, copied).columns)
    assert not any(c.startswith("in.") for c in _log(project, referenced).columns)
    a = monitor(project, copied).to_dict()
    b = monitor(project, referenced).to_dict()
    for part in ("window", "columns", "dataset", "prediction", "ood", "data_quality"):
        if part == "window":
            a[part].pop("model", None), b[part].pop("model", None)
        _close(a[part], b[part], part)
    assert a["window"]["rows"] == 569
    last = monitor(project, referenced, last=50).to_dict()  # a window of the newest rows
    assert last["window"]["rows"] == 50


def test_a_gone_or_changed_input_is_said_and_its_rows_left_out(
    project: Project, tmp_path: Path
) -> None:
    ref = _version(project)
    first, second = _rows(tmp_path, "parquet", "first"), _rows(tmp_path, "csv", "second")
    score_file(ref, first, tmp_path / "a.parquet", project=project)
    score_file(ref, second, tmp_path / "b.parquet", project=project)
    assert monitor(project, ref).window["rows"] == 2 * 569

    first.unlink()
    result = monitor(project, ref)
    assert result.window["rows"] == 569
    said = result.quality.findings()
    assert f"data quality: inputs of 569 batch-scored rows cannot be read: {first} is gone" in (
        "; ".join(said)
    )

    stat = second.stat()
    second.write_text(second.read_text().replace("p1,", "p9,", 1))  # same size
    os.utime(second, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same time
    with pytest.raises(NotFoundError) as caught:
        monitor(project, ref)
    assert f"{second} changed since it was scored (its sha256 differs)" in str(caught.value)


def test_log_inputs_takes_reference_or_copy(project: Project, tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        score_file(
            "cancer@champion",
            _rows(tmp_path, "parquet"),
            tmp_path / "o.parquet",
            project=project,
            log_inputs="pointer",
        )
    assert str(caught.value) == "log_inputs: 'pointer' is not one of reference, copy"
    assert not (tmp_path / "o.parquet").exists()
    assert pq.read_metadata(_rows(tmp_path, "parquet")).num_rows == 569
