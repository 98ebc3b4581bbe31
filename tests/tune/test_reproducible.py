"""Same seed, one worker: the same trials, parameter by parameter and value by value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlcycle import Project
from mlcycle.tune import tune
from tests.tune._studies import check_study_is_whole, make_project

pytestmark = pytest.mark.slow

N_TRIALS = 5


def _study(project: Project, name: str, seed: int) -> list[tuple[Any, ...]]:
    """Each trial of a new study: (number, state, params, values, curve)."""
    tune(project, data="sklearn:iris", name=name, seed=seed, workers=1)
    return [
        (
            t.number,
            t.state.name,
            t.params,
            t.values,
            [(p.step, p.value) for p in project.runs.metrics(t.user_attrs["run_id"], "val_loss")],
        )
        for t in check_study_is_whole(project, name, N_TRIALS)
    ]


def test_the_same_seed_gives_the_same_trials(tmp_path: Path) -> None:
    # The default space of an MLP (nine parameters) under TPE and Hyperband, as a user runs
    # it: studies of other names, since a name left out has the time in it.
    tuned = {"n_trials": N_TRIALS, "pruner": "auto", "space": {}, "max_epochs": 6}
    with (
        make_project(tmp_path / "a", tune=tuned) as one,
        make_project(tmp_path / "b", tune=tuned) as other,
    ):
        first = _study(one, "first", seed=7)
        again = _study(other, "again", seed=7)
        third = _study(one, "other-seed", seed=8)

    assert len(first) == N_TRIALS  # nothing failed
    for a, b in zip(first, again, strict=True):
        assert a == b
    assert len({len(a[2]) for a in first}) == 1 and len(first[0][2]) == 9
    # The seed is what made them equal: another draws other parameters.
    assert [a[2] for a in first] != [c[2] for c in third]
