"""A study's workers as Ray tasks (``executor="ray"``): one study, every trial once.

On a Ray started in this process; the two-node cluster on PostgreSQL runs a
study in ``tests/scale/test_ray_cluster.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlcycle.errors import SpecError
from mlcycle.tune import tune
from tests.tune._studies import check_study_is_whole, make_project

pytestmark = pytest.mark.slow

N_TRIALS = 6
QUICK = {"n_trials": N_TRIALS, "max_epochs": 6}


@pytest.mark.parametrize(
    "backend", ["journal", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_ray_tasks_share_one_study(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = None if backend == "journal" else str(request.getfixturevalue("pg_url"))
    with make_project(tmp_path / "p", tune=QUICK, store_url=url) as project:
        summary = tune(project, data="sklearn:iris", name="onray", workers=2, executor="ray")
        trials = check_study_is_whole(project, "onray", N_TRIALS)

    assert summary.trials == {"complete": N_TRIALS, "pruned": 0, "failed": 0, "retried": 0}
    assert summary.storage == ("journal" if backend == "journal" else "postgres")
    workers = {t.user_attrs["worker"]["pid"] for t in trials}
    assert os.getpid() not in workers and 1 <= len(workers) <= 2  # Ray's worker processes
    assert summary.best is not None and summary.best["test"]


def test_a_study_refuses_an_executor_it_cannot_use(tmp_path: Path) -> None:
    with (
        make_project(tmp_path / "p", tune=QUICK) as project,
        pytest.raises(SpecError, match="executor: 'dask' cannot run a study"),
    ):
        tune(project, data="sklearn:iris", executor="dask")
