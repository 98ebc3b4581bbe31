"""Data-parallel training on Ray against one process: accuracy and wall time (issue 20).

One temporary project (SQLite + a local artifact folder: the ray executor
runs it on a one-machine cluster) holds Fashion-MNIST (``fashion-mnist:ROWS``,
the first ROWS images of the Debian package's training set, split 70/15/15).
The same spec, seed and epochs are trained:

* ``local_1_thread``: ``mlcycle train`` in this process (the local executor)
  with one torch thread, as each Ray worker of one CPU runs (Ray sets
  ``OMP_NUM_THREADS=1``);
* ``local`` (with ``--default-threads``): the same with torch's default
  threads (one per core);
* ``ray_ddp``: ``--executor ray`` with ``train.workers: W``: Ray Train's
  TorchTrainer starts W replicas (DDP over gloo on the CPU), each on its half of
  every batch, the gradients averaged; replica 0 records the run.

Early stopping is off (patience above the epochs) so every arm runs every
epoch. Each arm is timed twice: ``wall`` from the call to the outcome (for
Ray: the job's dispatch and Ray Train's start of the worker group and process
group included) and ``train_s``, the training loop alone as the run records
it (replica 0's ``train_seconds``). Ray itself is started once, before the
first round, and timed apart (``ray_start_s``). One round per seed, the arms
in turn; accuracies are means over the seeds, times are medians. With
``--dropout 0`` the replicas take one process's steps (up to float rounding);
with dropout they draw masks of their own, so single seeds differ by the
seed-to-seed noise of dropout.

Usage::

    .venv/bin/python bench/scale.py [--rows 10000] [--epochs 10] [--workers 2] [--seeds 0,1,2]
        [--dropout 0.1] [--default-threads]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from typing import Any

import torch

from mlcycle import Project
from mlcycle.train import train


def _arm(project: Project, overrides: dict[str, Any], executor: str) -> dict[str, Any]:
    started = time.perf_counter()
    outcome = train(project, data="fashion_mnist", overrides=overrides, executor=executor)
    wall = time.perf_counter() - started
    summary = outcome.summary
    return {
        "wall_s": round(wall, 2),
        "train_s": round(float(summary["train_seconds"]), 2),
        "samples_per_s": round(float(summary["samples_per_s"]), 1),
        "test_accuracy": round(float(outcome.test["accuracy"]), 4),
        "epochs": summary["epochs_run"],
        "run": outcome.run_id,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--hidden", default="[256, 128]")
    parser.add_argument("--seeds", default="0,1,2", help="one round of the arms per seed")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument(
        "--default-threads", action="store_true", help="also the local arm with torch's threads"
    )
    args = parser.parse_args()

    from mlcycle.train._ray import connect

    with tempfile.TemporaryDirectory() as tmp, Project.init(tmp, name="scale") as project:
        project.datasets.add(f"fashion-mnist:{args.rows}")
        started = time.perf_counter()
        connect()  # Ray's start in this process, timed apart from the arms
        ray_start = time.perf_counter() - started
        rounds = []
        for seed in (int(s) for s in args.seeds.split(",")):
            overrides = {
                "max_epochs": args.epochs,
                "early_stopping.patience": args.epochs + 1,
                "model.kind": "mlp",
                "model.hidden": json.loads(args.hidden),
                "model.dropout": args.dropout,
                "batch_size": 64,
                "seed": seed,
                "device": "cpu",
            }
            rounds.append({"seed": seed})
            if args.default_threads:
                rounds[-1]["local"] = _arm(project, overrides, "local")
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # as each Ray worker of one CPU runs (OMP_NUM_THREADS=1)
            try:
                local_1t = _arm(project, overrides, "local")
            finally:
                torch.set_num_threads(threads)
            ddp = _arm(project, {**overrides, "workers": args.workers}, "ray")
            rounds[-1] |= {"local_1_thread": local_1t, "ray_ddp": ddp}
            print(json.dumps(rounds[-1]), flush=True)

        def mean(arm: str, key: str) -> float:
            return statistics.fmean(r[arm][key] for r in rounds)

        def median(arm: str, key: str) -> float:
            return statistics.median(r[arm][key] for r in rounds)

        arms = [a for a in ("local", "local_1_thread", "ray_ddp") if a in rounds[0]]
        result: dict[str, Any] = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "rows": args.rows,
            "epochs": args.epochs,
            "workers": args.workers,
            "dropout": args.dropout,
            "seeds": len(rounds),
            "ray_start_s": round(ray_start, 2),
        }
        for arm in arms:
            result[arm] = {
                "accuracy_mean": round(mean(arm, "test_accuracy"), 4),
                "wall_s_median": median(arm, "wall_s"),
                "train_s_median": median(arm, "train_s"),
            }
        base = "local_1_thread"
        result["ddp_minus_1_thread_accuracy_points"] = {
            "mean": round(
                100 * (mean("ray_ddp", "test_accuracy") - mean(base, "test_accuracy")), 2
            ),
            "per_seed": [
                round(100 * (r["ray_ddp"]["test_accuracy"] - r[base]["test_accuracy"]), 2)
                for r in rounds
            ],
        }
        for arm in arms:
            if arm != "ray_ddp":
                result[f"ddp_over_{arm}"] = {
                    "wall": round(median("ray_ddp", "wall_s") / median(arm, "wall_s"), 2),
                    "train": round(median("ray_ddp", "train_s") / median(arm, "train_s"), 2),
                }
        result["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
