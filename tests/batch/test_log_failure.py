"""A chunk whose prediction-log write fails is not committed, and is logged once on resume."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.compute as pc
import pytest

from mlcycle.batch import score_file
from mlcycle.predictions import PredictionLog
from tests._disk import FullDisk
from tests.batch.conftest import Scoring, diabetes_rows, write_input


def test_a_failed_log_write_fails_the_chunk_and_its_resume_logs_it_once(
    scoring: Scoring, tmp_path: Path, full_disk: FullDisk
) -> None:
    project = tmp_path / "proj"  # a copy: the other tests count the shared project's log rows
    shutil.copytree(scoring.root, project, ignore=shutil.ignore_patterns("log"))
    frame = diabetes_rows().drop(columns=["visit_id"])  # request ids are JOB:ROW
    source = write_input(frame, "parquet", tmp_path)
    output = tmp_path / "scores.parquet"
    full_disk.full.set()
    full_disk.clear_after = 1  # the first chunk's log write fails; then there is room again
    with pytest.raises(OSError, match="No space left on device"):
        score_file("diabetes@champion", source, output, project=project, chunk_rows=100, workers=1)
    summary = score_file(
        "diabetes@champion", source, output, project=project, chunk_rows=100, workers=1
    )
    assert summary.scored == len(frame)
    log = PredictionLog(project / ".mlcycle" / "log")
    table = log.read("diabetes")
    log.close()
    ids = table.filter(pc.starts_with(table.column("request_id"), f"{summary.job_id}:"))
    logged = ids.column("request_id").to_pylist()
    assert sorted(logged) == sorted(f"{summary.job_id}:{i}" for i in range(len(frame)))
