"""Several processes on one study share it: no trial lost, none twice, exactly ``n_trials``."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from mlcycle import Project
from mlcycle.train import resolve_data
from mlcycle.tune import storage_for, study_run, tune
from tests.conftest import PG_ADMIN_URL
from tests.tune._studies import (
    check_study_is_whole,
    finish,
    load_trials,
    make_project,
    pause_outside_locks,
    run_at_once,
    start_tune,
    wait_until,
)

pytestmark = pytest.mark.slow

N_TRIALS = 8
QUICK = {"n_trials": N_TRIALS, "max_epochs": 8}


@pytest.mark.parametrize(
    "backend", ["journal", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_two_processes_share_one_study(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = None if backend == "journal" else str(request.getfixturevalue("pg_url"))
    with make_project(tmp_path / "shared", tune=QUICK, store_url=url) as project:
        resolve_data(project, "sklearn:iris")  # the dataset is there before either starts
        codes = run_at_once(project.root, "shared")
        assert codes == [0, 0]
        trials = check_study_is_whole(project, "shared", N_TRIALS)
        summary = study_run(project, "shared").summary

    assert len(trials) == N_TRIALS and {t.state.name for t in trials} == {"COMPLETE"}
    assert summary["storage"] == ("journal" if backend == "journal" else "postgres")
    workers = {t.user_attrs["worker"]["pid"] for t in trials}
    assert len(workers) == 2  # both took trials: they were released together
    # The study's run says what the study holds, whichever process wrote it last.
    assert summary["trials"]["complete"] == N_TRIALS, summary["trials"]
    assert summary["epochs_trained"] == sum(t.user_attrs["epochs"] for t in trials)


def test_worker_processes_share_a_journal_study(tmp_path: Path) -> None:
    with make_project(tmp_path / "workers", tune=QUICK) as project:
        summary = tune(project, data="sklearn:iris", name="workers", workers=2)
        trials = check_study_is_whole(project, "workers", N_TRIALS)

    assert summary.trials == {"complete": N_TRIALS, "pruned": 0, "failed": 0, "retried": 0}
    workers = {t.user_attrs["worker"]["pid"] for t in trials}
    assert os.getpid() not in workers and 1 <= len(workers) <= 2
    assert summary.best is not None and summary.best["test"]


def test_a_process_that_asked_its_last_trial_waits_for_the_others_to_end(tmp_path: Path) -> None:
    """Its summary of the study holds every trial, whoever ends last."""
    with make_project(tmp_path / "wait", tune={"n_trials": 2}) as project:
        other = start_tune(project, "wait")
        first = wait_until(lambda: _trained_an_epoch(project), other, "a trial trained")
        pause_outside_locks(other, project, "wait")  # alive, in the middle of trial 0

        def resume_other() -> None:
            # ... until this process has trained the study's other trial.
            while not any(t.state.name == "COMPLETE" for t in load_trials(project, "wait")):
                time.sleep(0.05)
            other.send_signal(signal.SIGCONT)

        resumer = threading.Thread(target=resume_other, daemon=True)
        resumer.start()
        try:
            summary = tune(project, data="sklearn:iris", name="wait")
            after = {t.number: t.state.name for t in load_trials(project, "wait")}
        finally:
            other.send_signal(signal.SIGCONT)
            resumer.join(60)
            finish(other)
        trials = check_study_is_whole(project, "wait", n_trials=2)
        record = study_run(project, "wait")

    assert first.number == 0
    assert after == {0: "COMPLETE", 1: "COMPLETE"}  # it returned once both had ended
    assert summary.trials["complete"] == 2
    assert record.summary["trials"]["complete"] == 2
    assert summary.best is not None
    assert summary.best["values"]["accuracy"] == max(t.value for t in trials)


def _trained_an_epoch(project: Project) -> Any:
    for t in load_trials(project, "wait"):
        run_id = t.user_attrs.get("run_id")
        if t.state.name == "RUNNING" and run_id and project.runs.metrics(run_id, "val_accuracy"):
            return t
    return None


@pytest.mark.postgres
def test_workers_starting_together_make_the_optuna_schema_once(pg_url: str, tmp_path: Path) -> None:
    """Each finds ``<store schema>_optuna`` made, or makes it: none fails on the other's."""
    schema = pg_url.rsplit("%3D", 1)[1] + "_optuna"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    errors: list[BaseException] = []
    with make_project(tmp_path / "schema", store_url=pg_url) as project:
        for _ in range(5):  # a race: a few rounds, each on a schema not made yet
            with admin.connect() as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            ready = threading.Barrier(6)

            def open_storage(ready: threading.Barrier = ready) -> None:
                ready.wait(60)
                try:
                    storage_for(project, "together")
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=open_storage) for _ in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
    admin.dispose()
    assert not errors, errors
