"""Scoring a folder of Parquet files on Ray gives each file the local scorer's output.

A local Ray instance (2 CPUs) scores four files, one with rows the model
cannot take; each output equals :func:`score_file`'s output of that file, on
local folders and on a real S3 API (moto's server on loopback). A second run
skips what is done; another model version is refused, or replaces the
outputs with ``restart``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlcycle.batch import score_file, score_files_on_ray
from mlcycle.errors import ConflictError
from tests._s3 import CREDENTIALS, s3_server
from tests.batch.conftest import Scoring, cancer_rows, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """A Ray instance in this process: this module's, or one an earlier test left running."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    if started:
        ray.shutdown()


def _inputs(folder: Path) -> list[Path]:
    frame = cancer_rows()
    frame.loc[7, "mean_radius"] = np.inf  # one row the model cannot take
    folder.mkdir(parents=True)
    paths = []
    for i, part in enumerate(np.array_split(np.arange(len(frame)), 4)):
        path = folder / ("nested/" if i == 3 else "") / f"part-{i}.parquet"
        path.parent.mkdir(exist_ok=True)
        frame.iloc[part].to_parquet(path, index=False)
        paths.append(path)
    return paths


def _expected(scoring: Scoring, path: Path, tmp: Path) -> pd.DataFrame:
    out = tmp / f"local-{path.stem}.parquet"
    score_file(scoring.cancer, path, out, log=False)
    return pq.read_table(out).to_pandas()


@pytest.mark.usefixtures("ray_local")
def test_each_file_gets_the_local_scorers_output_and_a_rerun_skips_it(
    scoring: Scoring, tmp_path: Path
) -> None:
    files = _inputs(tmp_path / "in")
    out = tmp_path / "out"
    summary = score_files_on_ray(
        "cancer@champion", str(tmp_path / "in"), str(out), project=scoring.root
    )
    assert summary.model == scoring.cancer.ref and summary.files == 4
    assert summary.rows == 569 and summary.rejected == 1 and summary.scored == 568
    assert summary.peak_worker_rss_mb > 50  # a worker holds Python, pyarrow and a session
    for path in files:
        relative = path.relative_to(tmp_path / "in").with_suffix(".parquet")
        got = pq.read_table(out / relative).to_pandas()
        pd.testing.assert_frame_equal(got, _expected(scoring, path, tmp_path))
    assert (out / "part-0.rejects.csv").exists()  # row 7 is in the first file
    assert not [p for p in out.rglob(".*") if p.name != "_mlcycle_job.json"]  # no scratch left

    again = score_files_on_ray(
        "cancer@champion", str(tmp_path / "in"), str(out), project=scoring.root
    )
    assert again.skipped_files == 4 and again.rows == 0


@pytest.mark.usefixtures("ray_local")
def test_another_job_in_the_output_is_refused_or_restarts(scoring: Scoring, tmp_path: Path) -> None:
    _inputs(tmp_path / "in")
    out = str(tmp_path / "out")
    score_files_on_ray("cancer@champion", str(tmp_path / "in"), out, project=scoring.root)
    (tmp_path / "in" / "part-0.parquet").write_bytes(
        (tmp_path / "in" / "part-1.parquet").read_bytes()
    )  # the input changed
    with pytest.raises(ConflictError, match="another job"):
        score_files_on_ray("cancer@champion", str(tmp_path / "in"), out, project=scoring.root)
    redone = score_files_on_ray(
        "cancer@champion", str(tmp_path / "in"), out, project=scoring.root, restart=True
    )
    assert redone.skipped_files == 0 and redone.files == 4


@pytest.mark.usefixtures("ray_local")
def test_from_s3_to_s3(scoring: Scoring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fsspec

    files = _inputs(tmp_path / "in")
    with s3_server() as endpoint:
        for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}.items():
            monkeypatch.setenv(name, value)
        # the workers get the driver's variables with their tasks, not from ray.init
        fs = fsspec.filesystem("s3", skip_instance_cache=True)
        fs.mkdir("scoring")
        fs.put(str(tmp_path / "in"), "scoring/in", recursive=True)
        summary = score_files_on_ray(
            "cancer@champion", "s3://scoring/in/", "s3://scoring/out/", project=scoring.root
        )
        assert summary.files == 4 and summary.rows == 569
        for path in files:
            relative = path.relative_to(tmp_path / "in").with_suffix(".parquet").as_posix()
            with fs.open(f"scoring/out/{relative}", "rb") as handle:
                got = pq.read_table(handle).to_pandas()
            pd.testing.assert_frame_equal(got, _expected(scoring, path, tmp_path))


@pytest.mark.usefixtures("ray_local")
def test_the_cli_scores_on_ray_and_plain_scoring_never_imports_ray(
    scoring: Scoring, tmp_path: Path
) -> None:
    _inputs(tmp_path / "in")
    import ray

    address = ray.get_runtime_context().gcs_address  # the CLI joins this test's instance
    done = run_cli(
        "score",
        "cancer@champion",
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        "--executor",
        "ray",
        "--workers",
        "2",
        "--json",
        cwd=scoring.root,
        env={"RAY_ADDRESS": address},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["files"] == 4 and summary["rows"] == 569 and summary["workers"] == 2
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, mlcycle.batch; print('ray' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "False"
