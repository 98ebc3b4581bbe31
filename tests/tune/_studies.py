"""Shared by the tune tests: the real ``mlcycle`` command, a free port, quick studies, projects,
study processes and the checks every study that ended must pass (importable under spawn)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from mlcycle import Project
from mlcycle.tune import storage_for, study_run, trial_runs

MLCYCLE = str(Path(sys.executable).with_name("mlcycle"))
# A study quick enough for a test: iris, a few epochs per trial.
QUICK: dict[str, Any] = {"max_epochs": 3}

# A study of small MLPs on iris that trains for a while (every epoch checkpointed, so a
# kill finds its metrics in the store): one searched field, no pruning unless asked.
TRAIN: dict[str, Any] = {
    "model": {"hidden": [8]},
    "batch_size": 16,
    "max_epochs": 30,
    "early_stopping": {"patience": 1000},
    "checkpoint_interval_s": 0,
}
TUNE: dict[str, Any] = {
    "n_trials": 3,
    "seed": 0,
    "pruner": "none",
    "space": {"lr": {"low": 1e-3, "high": 5e-2, "log": True}},
}


def mlcycle(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``mlcycle ARGS`` in ``cwd``, its output captured (wide lines: nothing wrapped)."""
    return subprocess.run(
        [MLCYCLE, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_project(
    root: Path,
    *,
    train: dict[str, Any] | None = None,
    tune: dict[str, Any] | None = None,
    store_url: str | None = None,
) -> Project:
    """A project whose ``mlcycle.yaml`` has these ``train`` and ``tune`` sections."""
    spec: dict[str, Any] = {
        "project": {"name": "tuned"},
        "train": {**TRAIN, **(train or {})},
        "tune": {**TUNE, **(tune or {})},
    }
    if store_url is not None:
        spec["store"] = {"url": store_url}
    Project.init(root, name="tuned").close()
    (root / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    return Project.open(root)


def start_tune(project: Project, name: str, *args: str) -> subprocess.Popen[bytes]:
    """``mlcycle tune`` on iris in its own process, in ``project``'s folder."""
    return subprocess.Popen(
        [MLCYCLE, "tune", "--data", "sklearn:iris", "--name", name, "--quiet", *args],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # One PyTorch thread: on a shared machine more only spin against each other.
        env={**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"},
    )


def finish(process: subprocess.Popen[bytes], timeout: float = 600) -> str:
    """Wait for a ``mlcycle tune`` process; its output, failing the test if it failed."""
    output = process.communicate(timeout=timeout)[0].decode()
    assert process.returncode == 0, output
    return output


def wait_until(condition: Callable[[], Any], process: subprocess.Popen[bytes], what: str) -> Any:
    """Poll ``condition()`` until it is truthy (its value), failing at once if ``process`` ended.

    No deadline of our own: a slow machine only makes it slower (pytest-timeout
    guards against a hang).
    """
    while True:
        found = condition()
        if found:
            return found
        if process.poll() is not None:
            output = process.communicate()[0].decode()
            pytest.fail(f"mlcycle tune exited ({process.returncode}) before {what}:\n{output}")
        time.sleep(0.02)


def load_trials(project: Project, name: str) -> list[optuna.trial.FrozenTrial]:
    """The study's trials as its storage holds them ([] before the study exists)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = storage_for(project, name, "auto").open()
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    except KeyError:
        return []
    finally:
        if isinstance(storage, optuna.storages.RDBStorage):
            storage.engine.dispose()  # no connection left for the garbage collector


def check_study_is_whole(project: Project, name: str, n_trials: int) -> list[Any]:
    """What every study that ended must hold; returns its trials.

    Trial numbers 0..k-1 each once; ``n_trials`` of them counted (complete or
    pruned), none left running or waiting; every trial that started has one
    run under the study's run, tagged with its number and ended with its
    state; the study's run finished.
    """
    trials = load_trials(project, name)
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials))), numbers
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") + states.count("PRUNED") == n_trials, states
    assert not {"RUNNING", "WAITING"} & set(states), states
    parent = study_run(project, name)
    assert parent.status == "finished"
    runs = trial_runs(project, parent.id)
    tags = [int(r.tags["trial"]) for r in runs]
    assert len(tags) == len(set(tags)), tags  # one run per trial
    by_number = {int(r.tags["trial"]): r for r in runs}
    status = {"COMPLETE": "finished", "PRUNED": "pruned", "FAIL": "killed"}
    for t in trials:
        if "run_id" not in t.user_attrs and t.state.name == "FAIL":
            continue  # its worker died before it started the trial's run
        run = by_number[t.number]
        assert t.user_attrs["run_id"] == run.id
        assert run.parent_run_id == parent.id and run.tags["study"] == name
        assert run.status == status[t.state.name], (t.number, t.state.name, run.status)
    assert set(by_number) == {t.number for t in trials if "run_id" in t.user_attrs}
    return trials


def tune_at_once(root: str, name: str, barrier: Any) -> None:
    """A process that joins study ``name`` in ``root`` when every other one is ready too."""
    import torch

    from mlcycle.tune import tune

    torch.set_num_threads(1)
    with Project.open(root) as project:
        barrier.wait(timeout=300)
        tune(project, data="sklearn:iris", name=name)


def run_at_once(root: Path, name: str, processes: int = 2) -> list[int | None]:
    """``processes`` fresh processes on study ``name``, released together; their exit codes."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    procs = [
        ctx.Process(target=tune_at_once, args=(str(root), name, barrier)) for _ in range(processes)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(600)
    return [p.exitcode for p in procs]


def _wait_stopped(pid: int) -> None:
    """Until the kernel shows ``pid`` stopped: ``kill`` returns before a process
    running on another core has stopped, and it may take a lock meanwhile."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("T", "t"):
            return
        time.sleep(0.001)
    raise AssertionError(f"process {pid} did not stop within 10 s of SIGSTOP")


def pause_outside_locks(process: subprocess.Popen[bytes], project: Project, name: str) -> None:
    """SIGSTOP ``process`` at a moment it holds none of the study's or the store's locks.

    A process stopped inside a write would stall every other one: the store's
    SQLite write lock, Optuna's journal lock file, the study's ask lock. Stop
    it, look, and let it run a little more when it holds one.
    """
    import fcntl
    import sqlite3

    storage = storage_for(project, name, "auto")
    while True:
        process.send_signal(signal.SIGSTOP)
        _wait_stopped(process.pid)
        held = False
        # The study's ask lock, and the flock around every append to its journal.
        for lock in filter(None, (storage.lock_path, storage.journal_lock_path)):
            with open(lock, "a+b") as handle:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
                except BlockingIOError:
                    held = True
        db = sqlite3.connect(project.root / ".mlcycle" / "mlcycle.db", timeout=0)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.rollback()
        except sqlite3.OperationalError:
            held = True
        finally:
            db.close()
        if not held:
            return
        process.send_signal(signal.SIGCONT)
        time.sleep(0.05)
