"""A pruned trial really stopped: its curve ends early, its epochs count, Optuna saw that curve."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcycle.tune import trial_runs, tune
from tests.tune._studies import check_study_is_whole, make_project

MAX_EPOCHS = 9

pytestmark = pytest.mark.slow


def test_a_pruned_trial_stops_at_once_and_its_epochs_count(tmp_path: Path) -> None:
    # The default pruner (Hyperband) over a wide learning-rate range: bad trials are pruned.
    with make_project(
        tmp_path / "prune",
        train={"max_epochs": MAX_EPOCHS},
        tune={
            "pruner": "auto",
            "n_trials": 8,
            "space": {"lr": {"low": 1e-4, "high": 0.3, "log": True}},
        },
    ) as project:
        summary = tune(project, data="sklearn:iris", name="pruned")
        trials = check_study_is_whole(project, "pruned", n_trials=8)
        runs = {int(r.tags["trial"]): r for r in trial_runs(project, summary.run_id)}
        curves = {
            n: [(p.step, p.value) for p in project.runs.metrics(r.id, "val_accuracy")]
            for n, r in runs.items()
        }

    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert pruned, [t.state.name for t in trials]
    assert summary.trials["pruned"] == len(pruned)
    for t in pruned:
        run, curve = runs[t.number], curves[t.number]
        assert run.status == "pruned"
        epochs = len(curve)
        assert [step for step, _ in curve] == list(range(epochs))
        assert 1 <= epochs < MAX_EPOCHS  # stopped before the end ...
        assert run.summary["epochs_run"] == epochs == t.user_attrs["epochs"]
        assert run.summary["pruned_at_epoch"] == epochs  # ... at the epoch it was pruned
        assert "model/weights.safetensors" not in run.artifacts  # ... and went no further
    for t in trials:
        # What the pruner judged is what the run logged, epoch by epoch (Optuna's step is
        # the epochs trained, Hyperband's resource; the run's is the epoch's index).
        logged = [(step + 1, value) for step, value in curves[t.number]]
        assert sorted(t.intermediate_values.items()) == logged, t.number
    # Every epoch trained counts, the pruned trials' included.
    assert summary.epochs_trained == sum(len(c) for c in curves.values())
    assert summary.epochs_trained < MAX_EPOCHS * len(trials)
