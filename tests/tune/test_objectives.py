"""Several objectives: a Pareto front of validation accuracy against size or latency.

Each front point must be non-dominated among the complete trials (and every
other trial dominated by one), its values those the trial's run recorded,
and ``pick`` must choose the front point the expression asks for, which is
then evaluated on the test split.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import optuna
import pytest

from mlcycle import Project
from mlcycle.errors import NotFoundError
from mlcycle.tune import StudySummary, pick_trial, storage_for, trial_runs, tune
from tests.tune._studies import QUICK

# Widths from 2 to two layers of 64 units: size and accuracy pull apart in 3 epochs.
SPACE = {
    "model.hidden": {"choices": [[2], [4], [16], [64, 64]]},
    "lr": {"low": 0.003, "high": 0.03, "log": True},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    with Project.init(tmp_path_factory.mktemp("objectives") / "proj", name="proj") as opened:
        yield opened


def _dominates(a: list[float], b: list[float], signs: list[int]) -> bool:
    """``a`` is at least as good as ``b`` everywhere and better somewhere (signs: +1 maximise)."""
    better = [s * x > s * y for x, y, s in zip(a, b, signs, strict=True)]
    worse = [s * x < s * y for x, y, s in zip(a, b, signs, strict=True)]
    return any(better) and not any(worse)


def _check_front(project: Project, summary: StudySummary) -> dict[int, list[float]]:
    """The front is exactly the non-dominated complete trials; returns every trial's values."""
    names = [o["name"] for o in summary.objectives]
    signs = [1 if o["direction"] == "maximize" else -1 for o in summary.objectives]
    study = optuna.load_study(
        study_name=summary.name, storage=storage_for(project, summary.name).open()
    )
    values = {
        t.number: list(t.values)
        for t in study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    }
    assert len(values) == summary.trials["complete"] >= 2
    front = {p["trial"] for p in summary.pareto}
    assert front, "the front is empty"
    for number, mine in values.items():
        dominated = any(_dominates(other, mine, signs) for other in values.values())
        assert dominated is (number not in front), (number, mine, values)
    runs = {int(r.tags["trial"]): r for r in trial_runs(project, summary.run_id)}
    for point in summary.pareto:
        assert [point["values"][n] for n in names] == values[point["trial"]]
        run = runs[point["trial"]]
        assert point["run_id"] == run.id
        assert point["values"]["accuracy"] == run.summary["val"]["accuracy"]
        if "parameters" in names:
            assert point["values"]["parameters"] == run.summary["parameters"]
    return values


@pytest.mark.slow  # 6 trials of 3 epochs: 5-15 s on 2 busy cores
def test_accuracy_against_size_and_the_smallest_accurate_model(project: Project) -> None:
    pick = "parameters where accuracy>=0.8"
    summary = tune(
        project,
        data="sklearn:iris",
        name="size",
        n_trials=6,
        seed=0,
        sampler="nsga2",
        objective="accuracy,parameters",
        pick=pick,
        overrides={**QUICK, "tune.space": SPACE},
    )
    assert summary.objectives == [
        {"name": "accuracy", "direction": "maximize"},
        {"name": "parameters", "direction": "minimize"},
    ]
    assert summary.best is None and summary.trials["pruned"] == 0  # several objectives: no pruning
    values = _check_front(project, summary)
    meeting = {n: v for n, v in values.items() if v[0] >= 0.8}
    assert meeting, values
    smallest = min(meeting.items(), key=lambda item: (item[1][1], item[0]))
    picked = summary.picked
    assert picked is not None
    assert picked["values"] == {"accuracy": smallest[1][0], "parameters": smallest[1][1]}
    assert picked["trial"] in {p["trial"] for p in summary.pareto}
    # The picked run, and only it, was evaluated on the test split.
    assert set(picked["test"]) >= {"accuracy", "f1_macro"}
    tested = [r.id for r in trial_runs(project, summary.run_id) if "test" in r.summary]
    assert tested == [picked["run_id"]]


@pytest.mark.slow  # 6 trials, each exported to ONNX and timed: 10-30 s
def test_accuracy_against_latency_and_the_fastest_accurate_model(project: Project) -> None:
    summary = tune(
        project,
        data="sklearn:iris",
        name="latency",
        n_trials=6,
        seed=0,
        sampler="nsga2",
        objective="accuracy,latency_ms",
        overrides={**QUICK, "tune.space": SPACE},
    )
    values = _check_front(project, summary)
    assert all(math.isfinite(v[1]) and 0 < v[1] < 1000 for v in values.values())
    # Without a pick every front point is evaluated on the test split.
    assert all(set(p["test"]) >= {"accuracy"} for p in summary.pareto)

    # Pick on the finished study (continued by name: no more trials): the fastest of the
    # front's points whose accuracy reaches the front's best accuracy.
    bar = max(p["values"]["accuracy"] for p in summary.pareto)
    again = tune(
        project,
        data="sklearn:iris",
        name="latency",
        n_trials=6,
        seed=0,
        sampler="nsga2",
        objective="accuracy,latency_ms",
        pick=f"latency_ms where accuracy>={bar}",
        overrides={**QUICK, "tune.space": SPACE},
    )
    assert again.trials == summary.trials
    meeting = [p for p in again.pareto if p["values"]["accuracy"] >= bar]
    fastest = min(meeting, key=lambda p: p["values"]["latency_ms"])
    assert again.picked is not None
    assert again.picked["trial"] == fastest["trial"]
    assert again.picked["run_id"] == fastest["run_id"]
    assert set(project.runs.get(fastest["run_id"]).summary["test"]) >= {"accuracy", "f1_macro"}


def _summary(points: list[dict[str, Any]]) -> StudySummary:
    return StudySummary(
        name="s",
        run_id="r",
        dataset="d@1",
        storage="journal",
        objectives=[
            {"name": "accuracy", "direction": "maximize"},
            {"name": "latency_ms", "direction": "minimize"},
        ],
        n_trials=len(points),
        trials={"complete": len(points)},
        epochs_trained=0,
        elapsed_s=0.0,
        pareto=points,
    )


def test_pick_chooses_the_fastest_point_meeting_every_condition() -> None:
    front = _summary(
        [
            {"trial": 0, "values": {"accuracy": 0.99, "latency_ms": 9.0}},
            {"trial": 1, "values": {"accuracy": 0.97, "latency_ms": 4.0}},
            {"trial": 2, "values": {"accuracy": 0.96, "latency_ms": 1.0}},
            {"trial": 3, "values": {"accuracy": 0.90, "latency_ms": 0.5}},
        ]
    )
    assert pick_trial(front, "latency_ms where accuracy>=0.97")["trial"] == 1
    assert pick_trial(front, "latency_ms where accuracy>0.97")["trial"] == 0
    assert pick_trial(front, "latency_ms where accuracy>=0.9")["trial"] == 3
    assert pick_trial(front, "accuracy where latency_ms<=4, accuracy<0.99")["trial"] == 1
    assert pick_trial(front, "accuracy")["trial"] == 0
    with pytest.raises(NotFoundError, match=r"no point of the front meets it \(front: accuracy"):
        pick_trial(front, "latency_ms where accuracy>0.99")


@pytest.mark.slow  # 3 trials on diabetes: 4-10 s
def test_a_regression_study_minimises_its_headline_metric(project: Project) -> None:
    summary = tune(
        project, data="sklearn:diabetes", name="regression", n_trials=3, seed=0, overrides=QUICK
    )
    assert summary.objectives == [{"name": "rmse", "direction": "minimize"}]
    runs = [r for r in trial_runs(project, summary.run_id) if r.status == "finished"]
    assert summary.best is not None and runs
    assert summary.best["values"]["rmse"] == min(r.summary["val"]["rmse"] for r in runs)
    assert set(summary.best["test"]) >= {"rmse", "mae", "r2"}


def test_a_target_reached_stops_the_study(project: Project) -> None:
    # Any accuracy reaches 0: the first trial (never pruned: nothing to compare it with) ends it.
    summary = tune(
        project, data="sklearn:iris", name="target", n_trials=4, seed=0, target=0.0, overrides=QUICK
    )
    assert summary.trials == {"complete": 1, "pruned": 0, "failed": 0, "retried": 0}
    assert len(trial_runs(project, summary.run_id)) == 1
