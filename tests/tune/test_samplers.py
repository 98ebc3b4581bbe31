"""Every sampler and every pruner runs a tiny study end to end: trials are runs under it.

Iris, 3 epochs a trial, 4 trials: each study takes seconds. What a study
must get right whatever drew its parameters: ``n_trials`` trials, each a
child run of the study with its number, the best one the best complete
trial's validation value and evaluated on test; a pruned trial stopped
early (its curve is shorter) and is recorded as pruned.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest

from mlcycle import Project
from mlcycle.tune import StudySummary, trial_runs, tune
from tests.tune._studies import QUICK

EPOCHS = QUICK["max_epochs"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    with Project.init(tmp_path_factory.mktemp("samplers") / "proj", name="proj") as opened:
        yield opened


def _check_study(project: Project, summary: StudySummary, n_trials: int) -> list[Any]:
    """What every study must hold; returns its trials' runs."""
    assert summary.trials["failed"] == 0
    assert summary.trials["complete"] + summary.trials["pruned"] == n_trials
    runs = trial_runs(project, summary.run_id)
    assert [int(r.tags["trial"]) for r in runs] == list(range(n_trials))
    assert all(r.parent_run_id == summary.run_id and r.tags["study"] == summary.name for r in runs)
    statuses = [r.status for r in runs]
    assert statuses.count("finished") == summary.trials["complete"]
    assert statuses.count("pruned") == summary.trials["pruned"]
    assert summary.epochs_trained == sum(r.summary["epochs_run"] for r in runs)
    for run in runs:
        curve = project.runs.metrics(run.id, "val_accuracy")
        assert len(curve) == run.summary["epochs_run"]
        if run.status == "pruned":
            # Stopped at once: fewer epochs than it was given, and said so.
            assert run.summary["epochs_run"] < EPOCHS
            assert run.summary["pruned_at_epoch"] == run.summary["epochs_run"]
        else:
            assert run.summary["epochs_run"] == EPOCHS
    complete = [r for r in runs if r.status == "finished"]
    best = summary.best
    assert best is not None
    assert best["values"]["accuracy"] == max(r.summary["val"]["accuracy"] for r in complete)
    assert best["run_id"] in {r.id for r in complete}
    assert set(best["test"]) >= {"accuracy", "f1_macro"}
    assert "test" in project.runs.get(best["run_id"]).summary
    return runs


@pytest.mark.slow  # a study of 4 trials each: 3-9 s on 2 busy cores
@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes", "gp", "nsga2"])
def test_every_sampler_runs_a_study(project: Project, sampler: str) -> None:
    summary = tune(
        project,
        data="sklearn:iris",
        name=f"sampler-{sampler}",
        sampler=sampler,
        n_trials=4,
        seed=0,
        overrides=QUICK,
    )
    runs = _check_study(project, summary, 4)
    # The sampler drew different parameters for its trials (the default space).
    drawn = [json.dumps(r.params["overrides"], sort_keys=True) for r in runs]
    assert len(set(drawn)) == 4


@pytest.mark.slow
def test_the_grid_sampler_walks_its_grid_once_and_stops(project: Project) -> None:
    space = {"batch_size": {"choices": [16, 32]}, "model.activation": {"choices": ["relu", "tanh"]}}
    summary = tune(
        project,
        data="sklearn:iris",
        name="grid",
        sampler="grid",
        pruner="none",
        n_trials=6,  # more than the grid's 4 points: the grid is the budget
        seed=0,
        overrides={**QUICK, "tune.space": space},
    )
    runs = _check_study(project, summary, 4)
    walked = sorted(
        (r.params["overrides"]["train.batch_size"], r.params["overrides"]["train.model.activation"])
        for r in runs
    )
    assert walked == sorted(itertools.product([16, 32], ["relu", "tanh"]))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("pruner", "pruned"),
    [("hyperband", True), ("successive_halving", True), ("median", False), ("none", False)],
)
def test_every_pruner_runs_a_study(project: Project, pruner: str, pruned: bool) -> None:
    summary = tune(
        project,
        data="sklearn:iris",
        name=f"pruner-{pruner}",
        sampler="random",
        pruner=pruner,
        n_trials=4,
        seed=0,
        overrides=QUICK,
    )
    _check_study(project, summary, 4)
    # Hyperband and successive halving stop the worse half of 4 trials by epoch 2 of 3;
    # the median pruner waits for 5 trials before it judges any; none never prunes.
    assert (summary.trials["pruned"] > 0) is pruned


@pytest.mark.slow
def test_the_grid_over_a_stepped_range_draws_its_exact_values(project: Project) -> None:
    # 0.1 + 2 * 0.1 is 0.30000000000000004 in floats: outside the range Optuna was given.
    summary = tune(
        project,
        data="sklearn:iris",
        name="grid-steps",
        sampler="grid",
        pruner="none",
        n_trials=5,
        seed=0,
        overrides={
            **QUICK,
            "tune.space": {"model.dropout": {"low": 0.1, "high": 0.3, "step": 0.1}},
        },
    )
    runs = _check_study(project, summary, 3)
    drawn = sorted(r.params["overrides"]["train.model.dropout"] for r in runs)
    assert drawn == [0.1, 0.2, 0.3]


@pytest.mark.slow  # two studies of 6 trials
def test_the_same_seed_gives_the_same_trials_whatever_the_studys_name(project: Project) -> None:
    """Hyperband deals trials to brackets by the seed, not by the (timestamped) name."""

    def trials(name: str) -> list[tuple[Any, ...]]:
        summary = tune(project, data="sklearn:iris", n_trials=6, seed=3, name=name, overrides=QUICK)
        runs = trial_runs(project, summary.run_id)
        return [
            (r.status, r.summary["epochs_run"], json.dumps(r.params["overrides"], sort_keys=True))
            for r in runs
        ]

    first, second = trials("seeded-a"), trials("seeded-b")
    assert first == second
    assert any(status == "pruned" for status, _, _ in first)  # Hyperband had a say
