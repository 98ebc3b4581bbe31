"""Distillation on Fashion-MNIST with T and alpha tuned on validation (issue 17).

Untuned (T 4, alpha 0.7, 6 epochs), a small CNN distilled from a large one
did worse than the same student alone (bench/RESULTS.md). This bench asks
whether distillation helps once its settings are chosen the way a user of
mlcycle would choose them:

1. train a teacher CNN and register it (its test accuracy is reported: it
   must be clearly above the student's for the teacher to have anything to
   teach);
2. tune ``distill.temperature`` and ``distill.alpha`` of the distilled
   student with :func:`mlcycle.tune.tune` (a grid of 4 x 3, no pruning, the
   student's own epoch budget), judged on the VALIDATION split only;
3. run :func:`mlcycle.compress.distill` with the tuned T and alpha over
   ``--seeds`` seeds: the student alone and the student distilled, same
   network, budget and seed, scored on the same TEST rows; the difference
   (distilled - alone) with its paired bootstrap 95% interval.

Both students select their best epoch on validation accuracy, as the tuner's
trials do (a study stops its trials on its objective), so the T and alpha the
study chose are used under the rule they were chosen with.

Usage::

    .venv/bin/python bench/distill_tune.py [--images 6000] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from typing import Any

import torch

import mlcycle
from mlcycle.compress import distill
from mlcycle.train import train
from mlcycle.tune import trial_runs, tune
from mlcycle.workflow import register

TEACHER = {
    "model.kind": "cnn",
    "model.channels": [32, 64],
    "model.hidden": [256],
    "model.dropout": 0.3,
    "schedule.kind": "cosine",
}
STUDENT = {"model.kind": "cnn", "early_stopping.metric": "accuracy"}
# A grid: two dimensions, a dozen trials; every pair is tried, none left to chance.
SPACE = {
    "distill.temperature": {"choices": [1.0, 2.0, 4.0, 8.0]},
    "distill.alpha": {"choices": [0.3, 0.6, 0.9]},
}


def show_grid(grid: list[dict[str, Any]]) -> None:
    """Validation accuracy of every (T, alpha) the study tried, T down, alpha across."""
    alphas = sorted({g["alpha"] for g in grid})
    print("  T \\ alpha " + " ".join(f"{a:>7}" for a in alphas), flush=True)
    for t in sorted({g["temperature"] for g in grid}):
        cells = {g["alpha"]: g["validation_accuracy"] for g in grid if g["temperature"] == t}
        row = " ".join(
            f"{cells[a]:7.4f}" if cells.get(a) is not None else "      -" for a in alphas
        )
        print(f"  {t:>9} {row}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6000, help="Fashion-MNIST images")
    parser.add_argument("--teacher-epochs", type=int, default=15)
    parser.add_argument("--student-epochs", type=int, default=30)
    parser.add_argument("--student-channels", default="4,8", help="the student CNN's channels")
    parser.add_argument("--student-hidden", type=int, default=16, help="its hidden layer")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    root = tempfile.mkdtemp(prefix="bench-distill-")
    started = time.monotonic()
    out: dict[str, Any] = {
        "bench": "distill_tune",
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, torch threads {args.threads}",
        "args": vars(args),
    }
    with mlcycle.Project.init(root, name="bench") as project:
        ref = project.datasets.add(f"fashion-mnist:{args.images}").version.ref
        split = project.datasets.load_split(project.datasets.get(ref))
        out["rows"] = {name: table.num_rows for name, table in split.items()}

        teacher = train(
            project,
            data=ref,
            overrides={**TEACHER, "max_epochs": args.teacher_epochs},
            quiet=True,
            name="teacher",
        )
        register(project, teacher.run_id, "fashion-teacher")
        out["teacher"] = {
            "spec": TEACHER,
            "test_accuracy": teacher.test["accuracy"],
            "ci": teacher.summary["test_ci"].get("accuracy"),
            "parameters": teacher.summary["parameters"],
            "best_epoch": teacher.summary["best_epoch"],
            "seconds": time.monotonic() - started,
        }
        print(f"teacher: {out['teacher']}", flush=True)

        student = {
            **STUDENT,
            "model.channels": [int(c) for c in args.student_channels.split(",")],
            "model.hidden": [args.student_hidden],
            "max_epochs": args.student_epochs,
        }
        tuning_started = time.monotonic()

        def progress(event: Any) -> None:
            print(
                f"  trial {event.number} {event.state} {event.values} best {event.best} "
                f"at {time.monotonic() - tuning_started:.0f}s",
                flush=True,
            )

        study = tune(
            project,
            data=ref,
            overrides={
                **{f"train.{k}": v for k, v in student.items()},
                "train.distill.teacher": "fashion-teacher@1",
                "tune.space": SPACE,
            },
            n_trials=len(SPACE["distill.temperature"]["choices"])
            * len(SPACE["distill.alpha"]["choices"]),
            sampler="grid",
            pruner="none",
            seed=0,
            name="distill-t-alpha",
            on_trial=progress,
        )
        assert study.best is not None
        best = study.best["params"]
        temperature, alpha = float(best["distill.temperature"]), float(best["distill.alpha"])
        grid = []
        for run in trial_runs(project, study.run_id):
            setting = run.params["train"]["distill"]
            grid.append(
                {
                    "temperature": setting["temperature"],
                    "alpha": setting["alpha"],
                    "validation_accuracy": run.summary.get("val", {}).get("accuracy"),
                }
            )
        show_grid(grid)
        out["tuning"] = {
            "space": SPACE,
            "grid": grid,
            "trials": study.trials,
            "best_validation_accuracy": study.best["values"]["accuracy"],
            "temperature": temperature,
            "alpha": alpha,
            "seconds": time.monotonic() - tuning_started,
        }
        print(f"tuned: {out['tuning']}", flush=True)

        distill_started = time.monotonic()
        result = distill(
            project,
            "fashion-teacher@1",
            student=student,
            seeds=range(args.seeds),
            temperature=temperature,
            alpha=alpha,
            register_as="fashion-student",
            on_step=lambda step: print(f"  {step}", flush=True),
        )
        out["distill"] = result.to_dict()
        out["distill_seconds"] = time.monotonic() - distill_started
    alone = [s["alone"]["accuracy"] for s in result.seeds]
    taught = [s["distilled"]["accuracy"] for s in result.seeds]
    d = result.difference
    print(
        f"\nteacher {out['teacher']['test_accuracy']:.4f} "
        f"({out['teacher']['parameters']} parameters); student "
        f"{result.seeds[0]['parameters']} parameters, T {temperature:.3g}, alpha {alpha:.3g}\n"
        f"  alone     {' / '.join(f'{a:.4f}' for a in alone)}\n"
        f"  distilled {' / '.join(f'{b:.4f}' for b in taught)}\n"
        f"  distilled - alone {d['mean']:+.4f}, paired 95% interval "
        f"{d['low']:+.4f} to {d['high']:+.4f}: "
        + ("distillation helped" if d["low"] > 0 else "no clear gain" if d["high"] > 0 else "hurt"),
        flush=True,
    )
    out["seconds"] = time.monotonic() - started
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
