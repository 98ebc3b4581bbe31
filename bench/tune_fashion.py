"""Fashion-MNIST CNN: a time-boxed tuned study against the default spec (issue 16).

One project, one dataset version (``fashion-mnist:N``; N = 14,286 gives
10,000 training images after the 70/15/15 split), two arms:

* ``default``: ``train(model="cnn")`` with the spec's defaults (AdamW, lr
  1e-3, batch 64, channels 32-64, early stopping on the validation loss);
* ``tuned``: ``tune(model="cnn")`` for ``--minutes`` of wall time (TPE +
  Hyperband, the CNN's default search space, at most ``--max-epochs`` per
  trial), its best trial (chosen on the validation split) evaluated once on
  the test split.

Both models are scored on the same test images; the difference of their
accuracies gets a paired bootstrap interval (the same resampled rows for
both), which is what says whether tuning helped by more than chance.

Usage::

    .venv/bin/python bench/tune_fashion.py [--minutes 30] [--images 14286] [--max-epochs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from typing import Any

import numpy as np
import torch

import mlcycle
from mlcycle.train import FeatureLayout, encode, encode_target, load_model, predict, train
from mlcycle.tune import tune


def correct(project: mlcycle.Project, run_id: str, ref: str) -> np.ndarray[Any, Any]:
    """1 where the run's model classifies a test image right, else 0."""
    version = project.datasets.get(ref)
    schema = project.datasets.schema(version)
    test = project.datasets.load_split(version)["test"]
    model, config = load_model(project, run_id)
    layout = FeatureLayout.from_dict(config["layout"])
    proba = predict(model, encode(test, layout), torch.device("cpu")).numpy()
    return (proba.argmax(axis=1) == encode_target(test, schema)).astype(np.float64)


def paired_interval(
    a: np.ndarray[Any, Any], b: np.ndarray[Any, Any], n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``b - a`` and its 95% percentile interval over resampled rows."""
    rng = np.random.default_rng(seed)
    diff = b - a
    index = rng.integers(0, len(diff), size=(n_boot, len(diff)))
    means = diff[index].mean(axis=1)
    return float(diff.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--images", type=int, default=14286)
    parser.add_argument("--max-epochs", type=int, default=15)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--project", default=None, help="keep the project here")
    args = parser.parse_args()

    root = args.project or tempfile.mkdtemp(prefix="tune-fashion-")
    with mlcycle.Project.init(root, name="fashion") as project:
        ref = project.datasets.add(f"fashion-mnist:{args.images}").version.ref
        split = project.datasets.get(ref)
        print(f"dataset {ref} in {root}", flush=True)

        started = time.monotonic()
        default = train(project, data=ref, model="cnn", quiet=True)
        default_s = time.monotonic() - started
        print(
            f"default: test accuracy {default.test['accuracy']:.4f} "
            f"{default.summary['test_ci'].get('accuracy')} in {default_s:.0f}s "
            f"({default.summary['epochs_run']} epochs)",
            flush=True,
        )

        def progress(event: Any) -> None:
            print(
                f"  trial {event.number} {event.state} {event.values} best {event.best} "
                f"({event.done} done, {event.pruned} pruned) at {time.monotonic() - started:.0f}s",
                flush=True,
            )

        started = time.monotonic()
        study = tune(
            project,
            data=ref,
            model="cnn",
            n_trials=10_000,
            timeout_s=args.minutes * 60,
            workers=args.workers,
            overrides={"max_epochs": args.max_epochs},
            name="fashion-cnn",
            on_trial=progress,
        )
        tuned_s = time.monotonic() - started
        assert study.best is not None
        best = study.best
        a = correct(project, default.run_id, ref)
        b = correct(project, best["run_id"], ref)
        diff, low, high = paired_interval(a, b)
        result = {
            "bench": "tune_fashion",
            "machine": f"{platform.machine()} {os.cpu_count()} cpus, torch threads "
            f"{torch.get_num_threads()}",
            "dataset": ref,
            "test_rows": len(a),
            "train_rows": project.datasets.load_split(split)["train"].num_rows,
            "default": {
                "test_accuracy": default.test["accuracy"],
                "ci": default.summary["test_ci"].get("accuracy"),
                "seconds": default_s,
                "epochs": default.summary["epochs_run"],
            },
            "tuned": {
                "test_accuracy": best["test"]["accuracy"],
                "ci": best["test_ci"].get("accuracy"),
                "validation_accuracy": best["values"]["accuracy"],
                "params": best["params"],
                "trial": best["trial"],
                "seconds": tuned_s,
                "trials": study.trials,
                "epochs_trained": study.epochs_trained,
            },
            "difference": {"mean": diff, "low": low, "high": high, "excludes_zero": low > 0},
        }
        print(
            f"\ndefault {a.mean():.4f}  tuned {b.mean():.4f}  difference {diff:+.4f} "
            f"[{low:+.4f}, {high:+.4f}] (paired bootstrap, 95%) "
            f"{'excludes 0: tuned better' if low > 0 else ('excludes 0: tuned worse' if high < 0 else 'includes 0')}"
        )
        print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
