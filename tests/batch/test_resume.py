"""A stopped job resumes from its parts, and its output is the uninterrupted run's, byte for byte."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcycle import ConflictError
from mlcycle.batch import score_file
from mlcycle.batch._parts import WorkFolder
from mlcycle.predictions import PredictionLog
from tests.batch.conftest import MLCYCLE, Scoring, cancer_rows, write_input


class Stop(Exception):
    """Stands for a crash part-way through a job."""


def _stop_after(chunks: int) -> object:
    calls = []

    def progress(done: int, total: int | None) -> None:
        calls.append(done)
        if len(calls) > chunks:
            raise Stop

    return progress


def _bad_rows_input(tmp_path: Path, kind: str) -> Path:
    frame = cancer_rows()
    if kind == "csv":
        frame = frame.astype({"mean_area": object})
        for row in (3, 250, 251, 560):
            frame.loc[row, "mean_area"] = "n/a?"
    return write_input(frame, kind, tmp_path, name="rows")


@pytest.mark.parametrize("kind", ["csv", "parquet", "folder"])
def test_a_stopped_job_resumes_and_matches_an_uninterrupted_run(
    scoring: Scoring, tmp_path: Path, kind: str
) -> None:
    source = _bad_rows_input(tmp_path, kind)
    rejected = 4 if kind == "csv" else 0
    options = {"project": scoring.root, "chunk_rows": 50, "workers": 2, "log": False}
    whole = score_file("cancer@champion", source, tmp_path / "whole.parquet", **options)

    output = tmp_path / "out.parquet"
    with pytest.raises(Stop):
        score_file("cancer@champion", source, output, progress=_stop_after(4), **options)
    parts = sorted(p.name for p in (tmp_path / "out.parquet.parts").glob("*.arrow"))
    assert len(parts) >= 4 and not output.exists()

    resumed = score_file("cancer@champion", source, output, **options)

    assert resumed.resumed_rows >= 200 and resumed.job_id != whole.job_id
    assert (resumed.rows, resumed.scored, resumed.rejected) == (569, 569 - rejected, rejected)
    assert output.read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    if rejected:
        assert (tmp_path / "out.parquet.rejects.csv").read_text() == (
            tmp_path / "whole.parquet.rejects.csv"
        ).read_text()
    assert not (tmp_path / "out.parquet.parts").exists()


def test_changed_input_or_model_is_refused_unless_restarted(
    scoring: Scoring, tmp_path: Path
) -> None:
    source = write_input(cancer_rows(), "parquet", tmp_path)
    output = tmp_path / "s.csv"
    options = {"project": scoring.root, "chunk_rows": 100, "log": False}
    with pytest.raises(Stop):
        score_file("cancer@champion", source, output, progress=_stop_after(2), **options)

    with pytest.raises(ConflictError, match=r"chunk size \(chunk_rows\) differ"):
        score_file("cancer@champion", source, output, project=scoring.root, chunk_rows=10)

    job = tmp_path / "s.csv.parts" / "job.json"
    record = json.loads(job.read_text())
    job.write_text(json.dumps({**record, "model": "cancer@999"}))
    with pytest.raises(
        ConflictError, match=r"model version differ.*then cancer@999, now cancer@1.*restart=True"
    ):
        score_file("cancer@champion", source, output, **options)
    job.write_text(json.dumps(record))

    write_input(cancer_rows().iloc[::-1], "parquet", tmp_path)  # same name, other content
    with pytest.raises(ConflictError, match="input file"):
        score_file("cancer@champion", source, output, **options)

    summary = score_file("cancer@champion", source, output, restart=True, **options)
    assert summary.resumed_rows == 0 and summary.scored == 569


def test_a_second_process_on_the_same_output_is_refused(scoring: Scoring, tmp_path: Path) -> None:
    source = write_input(cancer_rows(), "parquet", tmp_path)
    output = tmp_path / "s.parquet"
    (tmp_path / "s.parquet.parts").mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            "f = open(sys.argv[1], 'ab'); fcntl.flock(f, fcntl.LOCK_EX)\n"
            "print('locked', flush=True); time.sleep(60)\n",
            str(WorkFolder(output).path / ".lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConflictError, match="another 'mlcycle score' is writing"):
            score_file("cancer@champion", source, output, project=scoring.root, log=False)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert (
        score_file("cancer@champion", source, output, project=scoring.root, log=False).scored == 569
    )


def _big_input(path: Path, rows: int, names: list[str]) -> None:
    """``rows`` patients: the real ones repeated with noise, written in row groups of 50k."""
    base = cancer_rows()
    rng = np.random.default_rng(0)
    with pq.ParquetWriter(
        path, pa.schema([("patient_id", pa.int64()), *((n, pa.float64()) for n in names)])
    ) as w:
        for start in range(0, rows, 50_000):
            n = min(50_000, rows - start)
            picked = base[names].to_numpy()[rng.integers(0, len(base), n)]
            noisy = picked * rng.normal(1.0, 0.02, picked.shape)
            w.write_table(
                pa.table(
                    {
                        "patient_id": np.arange(start, start + n),
                        **{c: noisy[:, j] for j, c in enumerate(names)},
                    }
                )
            )


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_uninterrupted_output(scoring: Scoring, tmp_path: Path) -> None:
    rows = 600_000
    source = tmp_path / "big.parquet"
    _big_input(source, rows, scoring.cancer.input_names)
    args = ["--project", str(scoring.root), "score", "cancer@champion", str(source)]
    options = ["--chunk-rows", "5000", "--workers", "2", "--quiet", "--json"]

    output = tmp_path / "out.parquet"
    job = subprocess.Popen([MLCYCLE, *args, str(output), *options])
    parts = tmp_path / "out.parquet.parts"
    deadline = time.monotonic() + 120
    while len(list(parts.glob("*.arrow"))) < 10:
        assert job.poll() is None, "the job ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    done_before = len(list(parts.glob("*.arrow")))
    assert 10 <= done_before < rows // 5000 and not output.exists()

    rerun = subprocess.run(
        [MLCYCLE, *args, str(output), *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["resumed_rows"] >= done_before * 5000 and summary["scored"] == rows

    whole = subprocess.run(
        [MLCYCLE, *args, str(tmp_path / "whole.parquet"), *options, "--no-log"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert whole.returncode == 0, whole.stderr
    assert output.read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    ids = pq.read_table(output, columns=["patient_id"]).column(0).to_numpy()
    np.testing.assert_array_equal(ids, np.arange(rows))  # none missing, none twice, in order

    # every row reached the prediction log at least once, under its id
    log = PredictionLog(scoring.root / ".mlcycle" / "log")
    logged = log.read("cancer").select(["request_id", "source"])
    log.close()
    ours = {
        r for r, s in zip(*(c.to_pylist() for c in logged.columns), strict=True) if s == "batch"
    }
    assert {str(i) for i in range(rows)} <= ours
