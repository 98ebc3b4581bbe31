"""A study whose processes are SIGKILLed mid-trial, or inside a lock, continues where it stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from mlcycle import Project
from mlcycle.tune import _study, storage_for, tune
from tests.tune._studies import (
    TRAIN,
    check_study_is_whole,
    finish,
    load_trials,
    start_tune,
    wait_until,
)
from tests.tune._studies import make_project as make_tuned_project

pytestmark = pytest.mark.slow


def _training_trial(project: Project, name: str) -> Any:
    """The running trial (after the first) whose run has logged an epoch, far from its end."""
    for t in load_trials(project, name):
        run_id = t.user_attrs.get("run_id")
        if t.state.name != "RUNNING" or t.number < 1 or run_id is None:
            continue
        epochs = len(project.runs.metrics(run_id, "val_accuracy"))
        if 1 <= epochs <= TRAIN["max_epochs"] // 2:
            return t
    return None


def test_a_study_killed_mid_trial_resumes_and_asks_the_orphan_again(tmp_path: Any) -> None:
    with make_tuned_project(tmp_path / "kill") as project:
        study = start_tune(project, "killed")
        orphan = wait_until(lambda: _training_trial(project, "killed"), study, "a trial trained")
        study.send_signal(signal.SIGKILL)
        study.communicate(timeout=30)

        # What the kill left: the trial still RUNNING in the journal, its run running.
        left = {t.number: t for t in load_trials(project, "killed")}
        assert left[orphan.number].state.name == "RUNNING"
        killed_run = orphan.user_attrs["run_id"]
        assert project.runs.get(killed_run).status == "running"

        output = finish(start_tune(project, "killed", "--json"))
        trials = check_study_is_whole(project, "killed", n_trials=3)

    by_number = {t.number: t for t in trials}
    failed = by_number[orphan.number]
    assert failed.state.name == "FAIL"
    assert "worker died" in failed.user_attrs["error"]
    retries = [t for t in trials if t.user_attrs.get("retry_of") == orphan.number]
    assert len(retries) == 1, [t.user_attrs for t in trials]
    assert retries[0].params == orphan.params
    assert retries[0].state.name == "COMPLETE"
    # Nothing that had ended was trained again: one trial more than n_trials, the orphan.
    assert len(trials) == 3 + 1
    assert all(t.state.name == "COMPLETE" for t in trials if t.number != orphan.number)
    with Project.open(tmp_path / "kill") as project:
        assert project.runs.get(killed_run).status == "killed"
        summary = project.runs.get(failed.user_attrs["run_id"]).summary
        assert f"trial {orphan.number} asked again" in summary["error"]
    assert '"retried": 1' in output and '"failed": 0' in output, output


def test_a_trial_asked_by_a_worker_killed_before_it_named_itself_is_asked_again(
    tmp_path: Path,
) -> None:
    """A worker asks for a trial, then records its pid on it: a kill between the two."""
    with make_tuned_project(tmp_path / "unnamed", train={"max_epochs": 3}) as project:
        tune(project, data="sklearn:iris", name="unnamed", n_trials=1)
        storage = storage_for(project, "unnamed")
        with storage.exclusive():  # as a worker asks, under the study's lock
            optuna.load_study(study_name="unnamed", storage=storage.open()).ask()

        summary = tune(project, data="sklearn:iris", name="unnamed", n_trials=3)
        trials = check_study_is_whole(project, "unnamed", n_trials=3)

    assert trials[1].state.name == "FAIL" and "run_id" not in trials[1].user_attrs
    assert [t.user_attrs.get("retry_of") for t in trials] == [None, None, 1, None]
    assert summary.trials == {"complete": 3, "pruned": 0, "failed": 0, "retried": 1}


# A worker appending to the journal, stopped for good inside the lock around the append.
HOLD_JOURNAL_LOCK = """
import sys, time
from mlcycle.tune import StudyStorage
storage = StudyStorage(*sys.argv[1:4]).open()
storage._backend._lock.acquire()  # what JournalFileBackend takes around every append
print("held", flush=True)
time.sleep(600)
"""


def test_a_worker_killed_inside_the_journal_lock_does_not_stall_the_study(
    tmp_path: Path,
) -> None:
    with make_tuned_project(tmp_path / "lock", train={"max_epochs": 2}) as project:
        tune(project, data="sklearn:iris", name="locked", n_trials=1)
        storage = storage_for(project, "locked")
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                HOLD_JOURNAL_LOCK,
                storage.kind,
                storage.location,
                storage.lock_path,
            ],
            stdout=subprocess.PIPE,
        )
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        holder.kill()
        holder.wait(30)
        holder.stdout.close()

        study = optuna.load_study(study_name="locked", storage=storage.open())
        written = threading.Event()

        def write() -> None:
            study.set_user_attr("after the kill", True)
            written.set()

        threading.Thread(target=write, daemon=True).start()
        # An append takes milliseconds; a lock left by the dead process held it 30 s.
        assert written.wait(10), "the journal stayed locked by a process that no longer runs"
        summary = tune(project, data="sklearn:iris", name="locked", n_trials=2)

    assert summary.trials["complete"] == 2


def test_a_worker_process_killed_mid_trial_has_its_trial_asked_again_by_another(
    tmp_path: Path,
) -> None:
    with make_tuned_project(tmp_path / "workers", tune={"n_trials": 4}) as project:
        study = start_tune(project, "workers", "--workers", "2")
        running = wait_until(lambda: _training_trial(project, "workers"), study, "a trial trained")
        os.kill(running.user_attrs["worker"]["pid"], signal.SIGKILL)  # one worker, not the study
        finish(study)
        trials = check_study_is_whole(project, "workers", n_trials=4)
        runs = {t.number: project.runs.get(t.user_attrs["run_id"]) for t in trials}

    failed = [t for t in trials if t.state.name == "FAIL"]
    assert len(failed) == 1 and "worker died" in failed[0].user_attrs["error"]
    assert runs[failed[0].number].status == "killed"
    (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == failed[0].number]
    assert retry.params == failed[0].params and retry.state.name == "COMPLETE"
    assert retry.user_attrs["worker"]["pid"] != failed[0].user_attrs["worker"]["pid"]
    assert len(trials) == 4 + 1


def test_a_trial_of_a_worker_elsewhere_that_died_before_its_run_started_is_asked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No pid to look at and no run's heartbeat: it is orphaned once the grace is over."""
    monkeypatch.setattr(_study, "UNNAMED_GRACE_S", 0.5)  # a minute in a study
    with make_tuned_project(tmp_path / "elsewhere", train={"max_epochs": 3}) as project:
        tune(project, data="sklearn:iris", name="elsewhere", n_trials=1)
        storage = storage_for(project, "elsewhere")
        with storage.exclusive():
            asked = optuna.load_study(study_name="elsewhere", storage=storage.open()).ask()
            asked.set_user_attr("worker", {"host": "another-machine", "pid": 1, "started": "1"})
        time.sleep(1.0)

        summary = tune(project, data="sklearn:iris", name="elsewhere", n_trials=3)
        trials = check_study_is_whole(project, "elsewhere", n_trials=3)

    assert trials[1].state.name == "FAIL"
    assert [t.user_attrs.get("retry_of") for t in trials] == [None, None, 1, None]
    assert summary.trials == {"complete": 3, "pruned": 0, "failed": 0, "retried": 1}
