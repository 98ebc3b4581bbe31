"""Study overhead: ``mlcycle.tune.tune`` against a hand-written Optuna loop over ``fit`` (issue 16).

Both arms run the same study: sklearn digits, an MLP, the MLP default space
of ``mlcycle.tune.default_space``, multivariate TPE (5 random start-up
trials) and Hyperband (``min_resource=1``, ``max_resource=--epochs``,
``reduction_factor=3``): what ``mlcycle.tune`` builds for one objective, the same study seed and the same
study name (Hyperband puts a trial in a bracket by hashing the study name and
the trial number), ``--trials`` trials of at most ``--epochs`` epochs,
validation accuracy maximised, pruning on each epoch's validation accuracy
(reported at step = epochs trained, as ``mlcycle.tune`` does).

* ``mlcycle``: ``tune(project, ...)`` in a fresh project (SQLite store, the
  study in a journal file): every trial a run with its parameters, its
  environment, its per-epoch metrics and checkpoints, the chosen trial then
  evaluated on the test split and the study's HTML report written. The
  project and its dataset version are made outside the timed region.
* ``optuna+fit``: what one writes by hand: ``prepare`` the dataset (the same
  split), ``fit_layout``/``encode`` it as ``mlcycle.train`` does, an
  in-memory Optuna study with the same sampler and pruner, and an objective
  that builds the model (``build_model``, the same init seed) and calls
  ``mlcycle.train.fit`` with an ``on_epoch`` that reports and prunes. Nothing
  is stored. The data preparation is inside the timed region.

The arms are interleaved (A B, then B A, ...), one untimed warm-up round of
two trials first. Reported: median wall and CPU seconds per arm (CPU
seconds of this process, all its threads: steadier than wall time on a
shared machine), the ratio of
medians, the median paired ratio, and the mlcycle arm split into its trials
(until the last trial ended) and what follows (test evaluation of the chosen
trial, HTML report). The check: both arms drew the same parameters and got
the same value and state in every trial, so they did the same work.

Torch runs on ``--threads`` threads (default 1).

Usage::

    .venv/bin/python bench/tune_overhead.py [--repeats 3] [--trials 40] [--epochs 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from typing import Any

import optuna
import torch

import mlcycle
from mlcycle.data import prepare
from mlcycle.spec import DatasetSpec, ParamSpace, TrainSpec
from mlcycle.train import (
    EpochReport,
    TrainData,
    build_model,
    encode,
    encode_target,
    fit,
    fit_layout,
    head_width,
)
from mlcycle.tune import default_space, storage_for, tune

DATASET = "sklearn:digits"
DEVICE = torch.device("cpu")
STUDY = "overhead"


def sampler_and_pruner(seed: int, epochs: int) -> tuple[Any, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=5)
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    return sampler, pruner


def trial_list(study: optuna.Study) -> list[tuple[int, str, dict[str, Any], float | None]]:
    """(number, state, params, value or last intermediate value) of every trial, in order."""
    out = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        value = t.value
        if value is None and t.intermediate_values:
            value = t.intermediate_values[max(t.intermediate_values)]
        out.append((t.number, t.state.name, dict(t.params), value))
    return out


# -- the arms ------------------------------------------------------------------------------


def run_mlcycle(seed: int, trials: int, epochs: int) -> dict[str, Any]:
    root = tempfile.mkdtemp(prefix="mlcycle-bench-tune-overhead-")
    with mlcycle.Project.init(root, name="bench") as project:
        ref = project.datasets.add(DATASET).version.ref
        ended: list[float] = []
        gc.collect()
        started, cpu = time.perf_counter(), time.process_time()
        tune(
            project,
            data=ref,
            name=STUDY,
            n_trials=trials,
            seed=seed,
            sampler="tpe",
            pruner="hyperband",
            overrides={"max_epochs": epochs, "train.device": "cpu"},
            on_trial=lambda event: ended.append(time.perf_counter()),
        )
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        study = optuna.load_study(study_name=STUDY, storage=storage_for(project, STUDY).open())
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "trials_s": ended[-1] - started,
        "trials": trial_list(study),
    }


def load() -> tuple[Any, TrainData]:
    p = prepare(DATASET, DatasetSpec())
    train = p.table.take(p.split["train"])
    val = p.table.take(p.split["validation"])
    layout = fit_layout(p.schema, train)
    classes = tuple(p.schema.classes or ())
    return layout, TrainData(
        task=str(p.schema.task),
        n_classes=len(classes),
        train_x=encode(train, layout),
        train_y=encode_target(train, p.schema),
        val_x=encode(val, layout),
        val_y=encode_target(val, p.schema),
        classes=classes,
    )


def suggest(trial: optuna.Trial, space: dict[str, ParamSpace]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, s in space.items():
        if s.choices is not None:
            values[name] = trial.suggest_categorical(name, list(s.choices))
        elif name == "model.depth":
            assert s.low is not None and s.high is not None
            values[name] = trial.suggest_int(name, int(s.low), int(s.high), log=s.log)
        else:
            assert s.low is not None and s.high is not None
            values[name] = trial.suggest_float(name, s.low, s.high, log=s.log)
    return values


def run_hand(seed: int, trials: int, epochs: int) -> dict[str, Any]:
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    layout, data = load()
    space = default_space("mlp")
    sampler, pruner = sampler_and_pruner(seed, epochs)
    study = optuna.create_study(
        study_name=STUDY, direction="maximize", sampler=sampler, pruner=pruner
    )

    def objective(trial: optuna.Trial) -> float:
        v = suggest(trial, space)
        spec = TrainSpec.model_validate(
            {
                "lr": v["lr"],
                "batch_size": v["batch_size"],
                "weight_decay": v["weight_decay"],
                "optimizer": v["optimizer"],
                "schedule": {"kind": v["schedule.kind"]},
                "model": {
                    "kind": "mlp",
                    "hidden": [v["model.width"]] * v["model.depth"],
                    "activation": v["model.activation"],
                    "dropout": v["model.dropout"],
                },
                "max_epochs": epochs,
                "early_stopping": {"metric": "accuracy"},
                "device": "cpu",
            }
        )
        torch.manual_seed(spec.seed)
        net = build_model(
            spec.model, layout, data.task, head_width(spec, data.task, data.n_classes)
        )

        def on_epoch(report: EpochReport) -> None:
            trial.report(report.metrics["val_accuracy"], report.epoch + 1)  # epochs trained
            if trial.should_prune():
                raise optuna.TrialPruned()

        result = fit(spec, net, data, device=DEVICE, on_epoch=on_epoch)
        return float(result.history[result.best_epoch]["val_accuracy"])

    study.optimize(objective, n_trials=trials)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "trials_s": wall, "trials": trial_list(study)}


ARMS = {"mlcycle": run_mlcycle, "optuna+fit": run_hand}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed studies per arm")
    parser.add_argument("--trials", type=int, default=40, help="trials per study (default 40)")
    parser.add_argument("--epochs", type=int, default=20, help="max epochs a trial (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="the study's (sampler's) seed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    arms = list(ARMS)
    for arm in arms:  # warm-up: imports, first-call costs
        ARMS[arm](args.seed, 2, 2)

    runs: dict[str, list[dict[str, Any]]] = {a: [] for a in arms}
    for r in range(args.repeats):
        for arm in arms if r % 2 == 0 else arms[::-1]:
            out = ARMS[arm](args.seed, args.trials, args.epochs)
            runs[arm].append(out)
            print(f"  round {r} {arm}: {out['wall_s']:.2f} s", flush=True)

    wall = {a: [o["wall_s"] for o in runs[a]] for a in arms}
    med = {a: statistics.median(wall[a]) for a in arms}
    cpu = {a: [o["cpu_s"] for o in runs[a]] for a in arms}
    med_cpu = {a: statistics.median(cpu[a]) for a in arms}
    med_trials = statistics.median(o["trials_s"] for o in runs["mlcycle"])
    paired = statistics.median(
        wall["mlcycle"][i] / wall["optuna+fit"][i] for i in range(args.repeats)
    )
    reference = runs["optuna+fit"][0]["trials"]
    same = all(o["trials"] == reference for a in arms for o in runs[a])
    mismatch = next(
        (
            (a, i, x, y)
            for a in arms
            for o in runs[a]
            for i, (x, y) in enumerate(zip(o["trials"], reference, strict=False))
            if x != y
        ),
        None,
    )
    states = [s for _, s, _, _ in reference]
    epochs_info = f"{states.count('COMPLETE')} complete, {states.count('PRUNED')} pruned"

    print()
    print(
        f"{DATASET}, MLP default space, TPE (multivariate) + Hyperband, seed {args.seed}, "
        f"{args.trials} trials x <= {args.epochs} epochs ({epochs_info}), {args.repeats} repeats, "
        f"torch {torch.__version__}, optuna {optuna.__version__}, threads "
        f"{torch.get_num_threads()}, {os.cpu_count()} CPUs"
    )
    print()
    head = (
        f"{'arm':<11} {'median s':>9} {'min':>8} {'max':>8} {'vs optuna+fit':>14} "
        f"{'CPU s':>8} {'CPU vs':>7}"
    )
    print(head)
    print("-" * len(head))
    for a in arms:
        print(
            f"{a:<11} {med[a]:>9.2f} {min(wall[a]):>8.2f} {max(wall[a]):>8.2f} "
            f"{med[a] / med['optuna+fit']:>14.3f} {med_cpu[a]:>8.2f} "
            f"{med_cpu[a] / med_cpu['optuna+fit']:>7.3f}"
        )
    print()
    overhead = med["mlcycle"] / med["optuna+fit"] - 1
    trials_overhead = med_trials / med["optuna+fit"] - 1
    print(
        f"overhead (ratio of medians - 1): {overhead:+.1%}; median paired ratio {paired:.3f}; "
        f"mlcycle until its last trial ended {med_trials:.2f} s ({trials_overhead:+.1%}), "
        f"then test evaluation + report {med['mlcycle'] - med_trials:.2f} s"
    )
    cpu_overhead = med_cpu["mlcycle"] / med_cpu["optuna+fit"] - 1
    print(f"CPU overhead (ratio of median CPU seconds - 1): {cpu_overhead:+.1%}")
    print(f"bar (<= 10% wall): {'met' if overhead <= 0.10 else 'MISSED'}")
    print(f"check: same parameters, states and values in every trial of every study: {same}")
    if mismatch is not None:
        print(f"  first difference: {mismatch}")
    record = {
        "bench": "tune_overhead",
        "dataset": DATASET,
        "trials": args.trials,
        "max_epochs": args.epochs,
        "seed": args.seed,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "python": platform.python_version(),
        "wall_s": {a: [round(w, 3) for w in wall[a]] for a in arms},
        "wall_s_median": {a: round(med[a], 3) for a in arms},
        "cpu_s": {a: [round(c, 3) for c in cpu[a]] for a in arms},
        "cpu_s_median": {a: round(med_cpu[a], 3) for a in arms},
        "cpu_overhead": round(cpu_overhead, 4),
        "mlcycle_trials_s_median": round(med_trials, 3),
        "overhead": round(overhead, 4),
        "trials_overhead": round(trials_overhead, 4),
        "median_paired_ratio": round(paired, 4),
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "same_trials": same,
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
