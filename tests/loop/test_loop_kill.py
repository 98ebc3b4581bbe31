"""A loop process killed mid-retrain and mid-rollout picks up where it was; one champion throughout.

Real ``mlcycle loop`` processes are SIGKILLed at those moments, on SQLite and
on PostgreSQL, while a watcher thread checks that ``@champion`` resolves to
exactly one version at every poll and only ever moves from 1 to 2.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcycle import Project
from mlcycle.loop import read_state, read_traffic
from mlcycle.predictions import LoggedBatch, PredictionLog
from mlcycle.registry import load, register
from mlcycle.train import train
from tests.loop._stream import CANARY, FEATURES, make_project, rows

pytestmark = pytest.mark.slow

MLCYCLE = str(Path(sys.executable).with_name("mlcycle"))
LOOP = {
    "model": "stream",
    "data": "window",
    "min_labels": 600,
    "window_rows": 2000,
    "gate": {"bootstrap": 300},
    "rollout": CANARY,
}


def _log(project: Project, frame: pd.DataFrame, version: int) -> None:
    """What a server would have logged for ``frame`` answered by ``version``, and the labels."""
    model = load(f"stream@{version}", project=project)
    answer = model.predict(frame[FEATURES])
    log = PredictionLog(project.root / ".mlcycle" / "log")
    ids = [uuid.uuid4().hex for _ in range(len(frame))]
    for i, rid in enumerate(ids):
        log.append(
            LoggedBatch(
                "stream",
                version,
                "serve",
                [rid],
                {c: frame[c].to_numpy(np.float32)[i : i + 1] for c in FEATURES},
                0.5,
                labels=answer.labels[i : i + 1],
                probabilities=answer.probabilities[i : i + 1]
                if answer.probabilities is not None
                else None,
            )
        )
    log.feedback(zip(ids, frame["y"], strict=True))
    log.close()


@contextmanager
def watch_champion(project: Project) -> Iterator[list[int]]:
    """Resolve @champion every 20 ms in another connection; yields what it saw."""
    seen: list[int] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def poll() -> None:
        with Project.open(project.root) as other:
            while not stop.is_set():
                try:
                    seen.append(other.store.registry.get("stream@champion").version)
                except BaseException as exc:
                    failures.append(exc)
                time.sleep(0.02)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(10)
    assert not failures, failures
    assert seen and set(seen) <= {1, 2}
    assert seen == sorted(seen)  # 1 … 1 2 … 2: never back, never missing


def _loop(project: Project, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [MLCYCLE, "loop", *args],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )


def _wait(condition: object, process: subprocess.Popen[bytes], what: str) -> None:
    """Wait on progress: until ``condition()`` holds, failing at once if the loop died.

    No deadline of our own: a slow machine only makes it slower (pytest-timeout
    guards against a hang).
    """
    while not condition():  # type: ignore[operator]
        if process.poll() is not None:
            output = process.communicate()[0].decode()
            pytest.fail(f"the loop exited ({process.returncode}) before {what}:\n{output}")
        time.sleep(0.05)


def _lines_until(process: subprocess.Popen[bytes], marker: str) -> str:
    """The loop's output up to and including the first line holding ``marker``."""
    assert process.stdout is not None
    lines: list[str] = []
    for raw in process.stdout:
        lines.append(raw.decode())
        if marker in lines[-1]:
            return "".join(lines)
    pytest.fail(f"the loop ended without printing {marker!r}:\n{''.join(lines)}")


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_killed_mid_retrain_and_mid_rollout_the_loop_resumes(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = None if backend == "sqlite" else str(request.getfixturevalue("pg_url"))
    project = make_project(tmp_path / "kill", LOOP, store_url=url)
    project.datasets.add(rows(3000, changed=False, seed=1), name="stream", target="y")
    register(project, train(project, data="stream").run_id, "stream", alias="champion")
    _log(project, rows(900, changed=True, seed=2), version=1)

    with watch_champion(project) as seen:
        # 1. killed while the challenger trains (checkpoints every epoch)
        loop = _loop(project, "--once")

        def training() -> bool:
            runs = [r for r in project.store.list_runs(limit=20) if r.name == "loop-stream-c0"]
            return bool(runs) and len(project.runs.metrics(runs[0].id, "train_loss")) >= 3

        _wait(training, loop, "the retraining was under way")
        loop.send_signal(signal.SIGKILL)
        loop.communicate(timeout=30)
        state = read_state(project.store, "stream")
        assert state.phase == "retraining"
        run = next(r for r in project.store.list_runs(limit=20) if r.name == "loop-stream-c0")
        assert run.status == "running"  # killed, not finished
        assert project.store.registry.get("stream@champion").version == 1

        # 2. a new loop resumes the same run, gates, and starts the canary step
        loop = _loop(project, "--interval", "0.2")
        output = _lines_until(loop, "rollout_step")  # now baking: no challenger traffic yet
        assert read_state(project.store, "stream").phase == "rollout"
        loop.send_signal(signal.SIGKILL)
        output += loop.communicate(timeout=30)[0].decode()
        assert "resumed the interrupted run" in output, output
        assert project.store.get_run(run.id).status == "finished"
        versions = project.store.registry.list_versions("stream")
        assert [v.version for v in versions] == [1, 2] and versions[1].run_id == run.id
        assert read_traffic(project.store, "stream").mode == "canary"
        assert project.store.registry.get("stream@champion").version == 1

        # 3. the challenger gets its share of traffic; a restarted loop finishes the rollout
        _log(project, rows(200, changed=True, seed=3), version=2)
        _log(project, rows(200, changed=True, seed=4), version=1)
        done = subprocess.run(
            [MLCYCLE, "loop", "--once"], cwd=project.root, capture_output=True, timeout=300
        )
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
        assert "promoted: stream@2 is @champion" in done.stdout.decode(), done.stdout.decode()

    assert seen[-1] == 2
    assert project.store.registry.get("stream@champion").version == 2
    assert read_traffic(project.store, "stream").mode == "off"
    assert read_state(project.store, "stream").phase == "idle"
    project.close()
