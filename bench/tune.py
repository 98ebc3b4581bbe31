"""Tuning efficiency: TPE (multivariate) + Hyperband against random search without pruning (issue 16).

Both arms run ``mlcycle.tune.tune`` on sklearn digits with an MLP, the same
search space (the MLP defaults of ``mlcycle.tune.default_space``: lr, batch
size, activation, dropout, weight decay, optimiser, schedule, depth, width),
``--trials`` trials (default 40) of at most ``--epochs`` epochs each
(default 20; early stopping on validation accuracy with the spec's patience
stays on in both arms), for each of ``--seeds`` (default 0-4, the study's
seed, i.e. the sampler's). The model-initialisation seed ``train.seed`` is
the spec's default in every trial, so two trials with the same parameters
train the same model.

* ``tpe+hyperband``: ``sampler="tpe"`` (multivariate TPE) and
  ``pruner="hyperband"`` (mlcycle's defaults for one objective);
* ``random``: ``sampler="random"``, ``pruner="none"``.

Each study runs in a fresh project (SQLite store, the journal storage),
seeds in turn, the arms' order alternating between seeds. Per study it
reports: total epochs trained (``StudySummary.epochs_trained``, a pruned
trial's epochs included), the epochs trained until the best validation
accuracy first reaches ``--target`` (0.98: trials walked in trial order, every
trial's epochs counted, pruned ones too; the best is over completed trials,
as Optuna's), the best validation accuracy, and the wall time of the whole
``tune()`` call (which ends with the chosen trial's test evaluation and the
HTML report). The bar: TPE + Hyperband trains at most 50% of random search's
epochs with an equal or better best validation accuracy on every seed.

Checks printed: both arms searched the same space (the space recorded in the
study), every study counted ``--trials`` trials and none failed, and
``epochs_trained`` equals the sum of the trials' epochs.

Torch runs on ``--threads`` threads (default 1): on a loaded 2-core machine
two threads make a small MLP's step 10-20x slower.

Usage::

    .venv/bin/python bench/tune.py [--seeds 0 1 2 3 4] [--trials 40] [--epochs 20]
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

import optuna
import torch

import mlcycle
from mlcycle.tune import storage_for, tune

DATASET = "sklearn:digits"
ARMS: dict[str, dict[str, str]] = {
    "tpe+hyperband": {"sampler": "tpe", "pruner": "hyperband"},
    "random": {"sampler": "random", "pruner": "none"},
}


def run_study(arm: str, seed: int, trials: int, epochs: int, target: float) -> dict[str, Any]:
    """One study of ``arm`` in a fresh project; its counts, curve of epochs and wall time."""
    root = tempfile.mkdtemp(prefix="mlcycle-bench-tune-")
    with mlcycle.Project.init(root, name="bench") as project:
        ref = project.datasets.add(DATASET).version.ref
        name = f"{arm.replace('+', '-')}-{seed}"
        started = time.perf_counter()
        summary = tune(
            project,
            data=ref,
            name=name,
            n_trials=trials,
            seed=seed,
            overrides={"max_epochs": epochs, "train.device": "cpu"},
            **ARMS[arm],  # type: ignore[arg-type]
        )
        wall = time.perf_counter() - started
        study = optuna.load_study(study_name=name, storage=storage_for(project, name).open())
    done = 0
    to_target: int | None = None
    best = -1.0
    states: dict[str, int] = {}
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        states[t.state.name] = states.get(t.state.name, 0) + 1
        done += int(t.user_attrs.get("epochs") or 0)
        if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None:
            best = max(best, float(t.value))
            if to_target is None and best >= target:
                to_target = done
    assert summary.best is not None
    return {
        "arm": arm,
        "seed": seed,
        "epochs": summary.epochs_trained,
        "epochs_sum_of_trials": done,
        "epochs_to_target": to_target,
        "best_val_accuracy": best,
        "summary_best": float(summary.best["values"]["accuracy"]),
        "best_trial": summary.best["trial"],
        "best_params": summary.best["params"],
        "trials": summary.trials,
        "states": states,
        "wall_s": wall,
        "space": study.user_attrs["mlcycle"]["space"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--trials", type=int, default=40, help="trials per study (default 40)")
    parser.add_argument("--epochs", type=int, default=20, help="max epochs a trial (default 20)")
    parser.add_argument("--target", type=float, default=0.98, help="validation accuracy to reach")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    arms = list(ARMS)
    rows: list[dict[str, Any]] = []
    for i, seed in enumerate(args.seeds):
        for arm in arms if i % 2 == 0 else arms[::-1]:
            row = run_study(arm, seed, args.trials, args.epochs, args.target)
            rows.append(row)
            print(
                f"  seed {seed} {arm}: {row['epochs']} epochs, best {row['best_val_accuracy']:.4f}, "
                f"{row['wall_s']:.1f} s",
                flush=True,
            )

    by = {(r["seed"], r["arm"]): r for r in rows}
    tpe, rnd = arms
    per_seed = []
    for seed in args.seeds:
        a, b = by[(seed, tpe)], by[(seed, rnd)]
        per_seed.append(
            {
                "seed": seed,
                "epochs_ratio": a["epochs"] / b["epochs"],
                "wall_ratio": a["wall_s"] / b["wall_s"],
                "accuracy_delta": a["best_val_accuracy"] - b["best_val_accuracy"],
                "met": a["epochs"] <= 0.5 * b["epochs"]
                and a["best_val_accuracy"] >= b["best_val_accuracy"],
            }
        )

    def fmt(value: int | None) -> str:
        return "-" if value is None else f"{value}"

    print()
    print(
        f"{DATASET}, MLP default space, {args.trials} trials x <= {args.epochs} epochs, "
        f"seeds {args.seeds}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"{os.cpu_count()} CPUs"
    )
    print()
    head = (
        f"{'seed':>4} {'arm':<14} {'epochs':>6} {'to ' + str(args.target):>8} {'best val':>8} "
        f"{'complete':>8} {'pruned':>6} {'wall s':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['seed']:>4} {r['arm']:<14} {r['epochs']:>6} {fmt(r['epochs_to_target']):>8} "
            f"{r['best_val_accuracy']:>8.4f} {r['trials']['complete']:>8} "
            f"{r['trials']['pruned']:>6} {r['wall_s']:>7.1f}"
        )
    print()
    print(f"{'seed':>4} {'epochs tpe/random':>17} {'wall tpe/random':>15} {'acc delta':>9} bar")
    for p in per_seed:
        print(
            f"{p['seed']:>4} {p['epochs_ratio']:>17.1%} {p['wall_ratio']:>15.1%} "
            f"{p['accuracy_delta']:>+9.4f} {'met' if p['met'] else 'MISSED'}"
        )
    ratios = [p["epochs_ratio"] for p in per_seed]
    met = sum(p["met"] for p in per_seed)
    print()
    print(
        f"epochs ratio: median {statistics.median(ratios):.1%}, "
        f"max {max(ratios):.1%}; bar (<= 50% with equal or better accuracy) met on "
        f"{met} of {len(per_seed)} seeds"
    )
    same_space = all(r["space"] == rows[0]["space"] for r in rows)
    counted = all(
        r["trials"]["complete"] + r["trials"]["pruned"] == args.trials and not r["trials"]["failed"]
        for r in rows
    )
    sums = all(r["epochs"] == r["epochs_sum_of_trials"] for r in rows)
    best_agrees = all(r["summary_best"] == r["best_val_accuracy"] for r in rows)
    print(
        f"checks: same space {same_space}; {args.trials} trials counted, none failed {counted}; "
        f"epochs_trained = sum of trials' epochs {sums}; summary best = best trial {best_agrees}"
    )
    record = {
        "bench": "tune",
        "dataset": DATASET,
        "trials": args.trials,
        "max_epochs": args.epochs,
        "target": args.target,
        "seeds": args.seeds,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "python": platform.python_version(),
        "space": rows[0]["space"],
        "studies": [{k: v for k, v in r.items() if k != "space"} for r in rows],
        "per_seed": per_seed,
        "epochs_ratio_median": statistics.median(ratios),
        "bar_met_seeds": met,
        "checks": {
            "same_space": same_space,
            "trials_counted": counted,
            "epochs_sum": sums,
            "best_agrees": best_agrees,
        },
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
