"""Batch scoring on Ray against the local scorer, same files, same machine, one run (issue 20).

Set-up, in a temporary folder: ``--files`` Parquet files of ``--rows`` rows
each (30 float64 features drawn around breast_cancer's means and spreads,
plus an int64 ``row_id``), and a project where breast_cancer's default MLP
(3 epochs) is registered as ``cancer@champion`` with its 30 inputs renamed to
the generated columns' names.

Arms, interleaved ``--repeats`` times:

* ``local``: ``mlcycle.batch.score_file`` over the folder (one output file,
  its default threads), ``log=False`` (the Ray path does not log yet);
* ``ray``: ``mlcycle.batch.score_files_on_ray`` with ``--workers`` actors on a
  local Ray instance started once before the timings (its start is reported
  apart), one output per input file.

Reports rows/s (median), the ray/local ratio and the peak resident memory of
a Ray worker. The outputs of both arms are checked equal (probabilities to
1e-6, same labels) on the first file.

    .venv/bin/python bench/scale_scoring.py --files 20 --rows 250000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlcycle import Project
from mlcycle.batch import score_file, score_files_on_ray
from mlcycle.train import train
from mlcycle.workflow import register


def _project(root: Path) -> tuple[Path, list[str], np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    features = [c for c in frame.columns if c != "target"]
    with Project.init(root, name="scale") as project:
        project.datasets.add(pa.Table.from_pandas(frame, preserve_index=False), name="cancer")
        run = train(project, data="cancer@1", overrides={"max_epochs": 3}).run_id
        register(project, run, "cancer", alias="champion")
    x = frame[features].to_numpy()
    return root, features, x.mean(axis=0), x.std(axis=0)


def _files(
    folder: Path, n: int, rows: int, features: list[str], mean: np.ndarray, std: np.ndarray
) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        values = rng.normal(mean, std, size=(rows, len(features)))
        columns = {"row_id": np.arange(i * rows, (i + 1) * rows, dtype=np.int64)}
        columns |= {name: values[:, j] for j, name in enumerate(features)}
        pq.write_table(pa.table(columns), folder / f"part-{i:03d}.parquet", row_group_size=65_536)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    import ray

    tmp = Path(tempfile.mkdtemp(prefix="mlc-scale-"))
    try:
        root, features, mean, std = _project(tmp / "project")
        _files(tmp / "in", args.files, args.rows, features, mean, std)
        total = args.files * args.rows
        started = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - started
        rates: dict[str, list[float]] = {"local": [], "ray": []}
        peak = 0.0
        for r in range(args.repeats):
            for arm in ("local", "ray") if r % 2 == 0 else ("ray", "local"):
                out = tmp / f"out-{arm}-{r}"
                started = time.perf_counter()
                if arm == "local":
                    score_file(
                        "cancer@champion",
                        tmp / "in",
                        out.with_suffix(".parquet"),
                        project=root,
                        log=False,
                    )
                else:
                    summary = score_files_on_ray(
                        "cancer@champion",
                        str(tmp / "in"),
                        str(out),
                        project=root,
                        workers=args.workers,
                    )
                    peak = max(peak, summary.peak_worker_rss_mb)
                rates[arm].append(total / (time.perf_counter() - started))
        local = pq.read_table(tmp / "out-local-0.parquet").slice(0, args.rows).to_pandas()
        clustered = pq.read_table(tmp / "out-ray-0" / "part-000.parquet").to_pandas()
        assert (local["label"].to_numpy() == clustered["label"].to_numpy()).all()
        probas = [c for c in local.columns if c.startswith("proba_")]
        assert np.allclose(local[probas].to_numpy(), clustered[probas].to_numpy(), atol=1e-6)
        medians = {arm: statistics.median(v) for arm, v in rates.items()}
        print(
            json.dumps(
                {
                    "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                    "files": args.files,
                    "rows_per_file": args.rows,
                    "repeats": args.repeats,
                    "workers": args.workers,
                    "ray_start_s": round(ray_start, 1),
                    "rows_per_s": {k: round(v) for k, v in medians.items()},
                    "ray_over_local": round(medians["ray"] / medians["local"], 2),
                    "peak_worker_rss_mb": peak,
                },
                indent=2,
            )
        )
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
