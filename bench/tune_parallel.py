"""Parallel workers on one study: journal storage against Optuna's RDB on SQLite (issue 16).

The same study, ``--trials`` quick trials (default 150) by ``--workers``
worker processes (default 4, ``tune.workers``), once with the study in a
journal file (``tune.storage: journal``, what a project on SQLite uses) and
once in a SQLite database (``tune.storage: sqlite``, Optuna's
``RDBStorage``). A trial is a tiny MLP (one hidden layer of 8) on sklearn
iris for at most ``--epochs`` epochs (default 2), searching lr and batch
size with multivariate TPE (constant liar with several workers) and
Hyperband; every trial is still a run of the project (its SQLite store is
shared by the workers in both arms). Each study runs in a fresh project, the
arms alternate (journal, sqlite, sqlite, journal, ...) over ``--repeats``
rounds.

Timed: the whole ``tune()`` call (workers' start included, then the chosen
trial's test evaluation and the report), and the trials alone (the first
trial's start to the last trial's end, as the storage recorded them). Checked for every study, from the
storage and from the project's store:

* trial numbers are 0..N-1, each once;
* exactly ``--trials`` trials were counted (complete + pruned), none lost;
* every counted trial has exactly one run under the study, whose
  ``trial`` tag is the trial's number and whose status matches the trial's
  state (finished: complete, pruned: pruned); no run is left over;
* the summary's counts add up to the trials in the storage.

Usage::

    .venv/bin/python bench/tune_parallel.py [--trials 150] [--workers 4] [--repeats 1]
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

import mlcycle
from mlcycle.tune import storage_for, trial_runs, tune

DATASET = "sklearn:iris"
STATUS = {"COMPLETE": "finished", "PRUNED": "pruned"}


def run_study(storage: str, trials: int, workers: int, epochs: int, seed: int) -> dict[str, Any]:
    root = tempfile.mkdtemp(prefix="mlcycle-bench-tune-parallel-")
    name = f"parallel-{storage}"
    with mlcycle.Project.init(root, name="bench") as project:
        ref = project.datasets.add(DATASET).version.ref
        started = time.perf_counter()
        summary = tune(
            project,
            data=ref,
            name=name,
            n_trials=trials,
            workers=workers,
            seed=seed,
            overrides={
                "max_epochs": epochs,
                "train.device": "cpu",
                "train.model.hidden": [8],
                "tune.storage": storage,
                "tune.space": {
                    "lr": {"low": 1e-3, "high": 1e-1, "log": True},
                    "batch_size": {"choices": [8, 16, 32]},
                },
            },
        )
        wall = time.perf_counter() - started
        study = optuna.load_study(
            study_name=name, storage=storage_for(project, name, storage).open()
        )
        stored = study.get_trials(deepcopy=False)
        runs = trial_runs(project, summary.run_id)

    starts = [t.datetime_start for t in stored if t.datetime_start is not None]
    ends = [t.datetime_complete for t in stored if t.datetime_complete is not None]
    trials_s = (max(ends) - min(starts)).total_seconds()
    numbers = sorted(t.number for t in stored)
    states = [t.state.name for t in stored]
    counted = [t for t in stored if t.state.name in STATUS]
    by_trial: dict[int, list[Any]] = {}
    for r in runs:
        by_trial.setdefault(int(r.tags["trial"]), []).append(r)
    problems = []
    if numbers != list(range(len(stored))):
        problems.append(f"trial numbers are not 0..{len(stored) - 1} each once")
    if len(counted) != trials:
        problems.append(f"{len(counted)} counted trials, not {trials}")
    for t in counted:
        mine = by_trial.get(t.number, [])
        if len(mine) != 1:
            problems.append(f"trial {t.number} has {len(mine)} runs")
        elif mine[0].status != STATUS[t.state.name] or mine[0].id != t.user_attrs.get("run_id"):
            problems.append(f"trial {t.number} ({t.state.name}) has run {mine[0].status}")
    extra = set(by_trial) - {t.number for t in stored}
    if extra:
        problems.append(f"runs of trials the storage lacks: {sorted(extra)[:5]}")
    s = summary.trials
    if s["complete"] + s["pruned"] != len(counted) or s["complete"] != states.count("COMPLETE"):
        problems.append(f"summary counts {s} disagree with the storage")
    if s["complete"] + s["pruned"] + s["failed"] + s["retried"] != len(stored):
        problems.append(f"summary counts {s} do not add up to {len(stored)} stored trials")
    return {
        "storage": storage,
        "wall_s": wall,
        "trials_s": trials_s,
        "stored_trials": len(stored),
        "counted": len(counted),
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "failed": states.count("FAIL"),
        "runs": len(runs),
        "epochs": summary.epochs_trained,
        "best": summary.best["values"] if summary.best else None,
        "problems": problems,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=150)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2, help="max epochs a trial (default 2)")
    parser.add_argument("--repeats", type=int, default=1, help="studies per storage")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    arms = ["journal", "sqlite"]
    rows: list[dict[str, Any]] = []
    for r in range(args.repeats):
        for arm in arms if r % 2 == 0 else arms[::-1]:
            row = run_study(arm, args.trials, args.workers, args.epochs, args.seed)
            rows.append(row)
            print(
                f"  round {r} {arm}: {row['wall_s']:.1f} s, {row['counted']} counted, "
                f"{len(row['problems'])} problems",
                flush=True,
            )

    med = {a: statistics.median(r["wall_s"] for r in rows if r["storage"] == a) for a in arms}
    med_trials = {
        a: statistics.median(r["trials_s"] for r in rows if r["storage"] == a) for a in arms
    }
    print()
    print(
        f"{DATASET}, MLP (8), lr x batch size, TPE + Hyperband, {args.trials} trials x <= "
        f"{args.epochs} epochs, {args.workers} workers, {args.repeats} repeats, "
        f"optuna {optuna.__version__}, {os.cpu_count()} CPUs"
    )
    print()
    head = (
        f"{'storage':<8} {'wall s':>7} {'trials s':>8} {'trials/s':>8} {'stored':>6} {'counted':>7} "
        f"{'complete':>8} {'pruned':>6} {'failed':>6} {'runs':>5} problems"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        print(
            f"{row['storage']:<8} {row['wall_s']:>7.1f} {row['trials_s']:>8.1f} "
            f"{row['counted'] / row['trials_s']:>8.2f} "
            f"{row['stored_trials']:>6} {row['counted']:>7} {row['complete']:>8} "
            f"{row['pruned']:>6} {row['failed']:>6} {row['runs']:>5} "
            f"{'; '.join(row['problems']) or 'none'}"
        )
    speedup = med["sqlite"] / med["journal"]
    speedup_trials = med_trials["sqlite"] / med_trials["journal"]
    clean = all(not row["problems"] for row in rows)
    print()
    print(
        f"journal median {med['journal']:.1f} s, sqlite median {med['sqlite']:.1f} s: journal "
        f"{speedup:.2f}x faster; bar (>= 3x) {'met' if speedup >= 3 else 'MISSED'}; "
        f"no lost or duplicated trials: {clean}"
    )
    print(
        f"trials alone: journal {med_trials['journal']:.1f} s, sqlite "
        f"{med_trials['sqlite']:.1f} s: journal {speedup_trials:.2f}x faster"
    )
    record = {
        "bench": "tune_parallel",
        "dataset": DATASET,
        "trials": args.trials,
        "workers": args.workers,
        "max_epochs": args.epochs,
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "optuna": optuna.__version__,
        "python": platform.python_version(),
        "studies": rows,
        "wall_s_median": med,
        "trials_s_median": med_trials,
        "journal_speedup": speedup,
        "journal_speedup_trials": speedup_trials,
        "no_lost_or_duplicated": clean,
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
