"""A tick that fails is recorded, the loop backs off and goes on; too few rows trigger nothing.

The failures are real where they can be: a segment of the prediction log that is not
Parquet (what a full disk or a stray copy leaves), and a metric in ``mlcycle.yaml`` that does
not exist. Waits are handed to a ``sleep`` that records them instead of sleeping.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcycle import Project
from mlcycle.loop import TickError, backoff, read_state, run_loop, tick
from mlcycle.loop._loop import PHASES, PhaseStep
from mlcycle.loop._work import Work
from mlcycle.predictions import LoggedBatch, PredictionLog
from mlcycle.registry import load, register
from mlcycle.train import train
from tests.loop._stream import FEATURES, make_project, rows

MLCYCLE = str(Path(sys.executable).with_name("mlcycle"))
LOOP = {"model": "stream", "min_labels": 100_000, "interval_s": 1.0}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """A champion whose run later tests register again in projects of their own."""
    project = make_project(Path(tmp_path_factory.mktemp("errors")) / "p", LOOP)
    project.datasets.add(rows(600, changed=False, seed=1), name="stream", target="y")
    run = train(project, data="stream", overrides={"max_epochs": 5}).run_id
    register(project, run, "stream", alias="champion")
    yield project
    project.close()


@pytest.fixture
def project(trained: Project) -> Iterator[Project]:
    """The trained champion under a name of its own: a fresh loop state and prediction log."""
    model = f"stream{uuid.uuid4().hex[:6]}"
    run = trained.store.registry.get("stream@champion").run_id
    assert run is not None
    register(trained, run, model, alias="champion")
    spec = trained.spec
    trained.spec = spec.model_copy(update={"loop": spec.loop.model_copy(update={"model": model})})
    yield trained
    trained.spec = spec


def _model(project: Project) -> str:
    name = project.spec.loop.model
    assert name is not None
    return name


def _log(project: Project, frame: pd.DataFrame, *, labelled: bool = True) -> None:
    name = _model(project)
    model = load(f"{name}@champion", project=project)
    answer = model.predict(frame[FEATURES])
    ids = [uuid.uuid4().hex for _ in range(len(frame))]
    log = PredictionLog(project.root / ".mlcycle" / "log")
    log.append(
        LoggedBatch(
            name,
            1,
            "serve",
            ids,
            {c: frame[c].to_numpy(np.float32) for c in FEATURES},
            0.5,
            labels=answer.labels,
            probabilities=answer.probabilities,
        )
    )
    if labelled:
        log.feedback(zip(ids, frame["y"], strict=True))
    log.close()


def _corrupt_segment(project: Project) -> Path:
    folder = project.root / ".mlcycle" / "log" / "predictions" / _model(project) / "v1"
    day = sorted(folder.glob("date=*"))[-1]
    path = day / "999999999999-0-zzzz.parquet"  # the newest segment: read first
    path.write_bytes(b"not parquet at all")
    return path


def _errors(project: Project) -> list[Any]:
    events = project.store.list_events(entity_type="loop", entity_id=_model(project), limit=50)
    return [e for e in events if e.action == "loop.error"]


def test_backoff_doubles_from_the_interval_and_stops_at_ten_minutes() -> None:
    assert [backoff(30, k) for k in range(1, 6)] == [60, 120, 240, 480, 600]
    assert backoff(900, 3) == 900  # an interval longer than the cap is kept
    assert backoff(1, 1, configuration=True) == 600


def test_a_failing_tick_is_recorded_and_the_next_good_tick_proceeds(project: Project) -> None:
    _log(project, rows(120, changed=False, seed=5))
    corrupt = _corrupt_segment(project)
    waits: list[float] = []
    seen: list[TickError] = []

    def failed(error: TickError) -> None:
        seen.append(error)
        corrupt.unlink()  # the operator removes the stray file

    result = run_loop(project, max_ticks=2, interval_s=1.0, on_error=failed, sleep=waits.append)
    assert len(seen) == 1 and waits == [2.0]  # backed off: 2 x the interval, then went on
    error = seen[0].error
    assert error["phase"] == "idle" and error["step"] == "monitor" and error["in_a_row"] == 1
    assert error["type"] == "ArrowInvalid" and "Traceback" in error["traceback"]
    assert str(seen[0]).startswith("loop tick failed in idle (monitor): ArrowInvalid")
    assert any(s.startswith("healthy:") for s in result.steps), result.steps
    [event] = _errors(project)
    assert "idle (monitor): ArrowInvalid" in (event.reason or "")
    assert event.details["errors"] == 1 and event.details["last_error"]["retry_in_s"] == 2.0
    state = read_state(project.store, _model(project))
    assert state.errors == 0 and state.last_error is not None  # recovered, the error kept
    actions = [
        e.action for e in project.store.list_events(entity_type="loop", entity_id=_model(project))
    ]
    assert actions.index("loop.recovered") < actions.index("loop.error")  # newest first


def test_a_phase_that_raises_once_leaves_the_state_and_the_loop_resumes_it(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    _log(project, rows(60, changed=False, seed=6))
    spec = project.spec
    triggers = spec.loop.triggers.model_copy(update={"new_labels": 10})
    project.spec = spec.model_copy(
        update={"loop": spec.loop.model_copy(update={"triggers": triggers})}
    )
    collect = PHASES["triggered"]
    calls = []

    def flaky(work: Work, state: Any) -> Any:
        calls.append(state.phase)
        if len(calls) == 1:
            raise RuntimeError("the disk went away for a moment")
        return collect.run(work, state)

    monkeypatch.setitem(PHASES, "triggered", PhaseStep(collect.step, flaky))
    with pytest.raises(TickError, match=r"triggered \(collect\): RuntimeError: the disk went"):
        tick(project)
    state = read_state(project.store, _model(project))
    assert state.phase == "triggered" and state.errors == 1  # the trigger is not lost
    again = tick(project)
    assert again.state.phase == "triggered" and again.state.errors == 0
    assert any("waiting for labels" in s for s in again.steps), again.steps


def test_a_configuration_error_waits_the_longest_says_so_and_is_read_again(
    project: Project,
) -> None:
    _log(project, rows(60, changed=False, seed=7))
    spec_file = project.root / "mlcycle.yaml"
    good = spec_file.read_text()
    broken = yaml.safe_load(good)
    broken.setdefault("monitor", {})["performance"] = {"metric": "happiness"}
    broken["loop"]["model"] = _model(project)
    spec_file.write_text(yaml.safe_dump(broken))
    spec = project.spec
    project.spec = spec.model_copy(
        update={
            "monitor": spec.monitor.model_copy(
                update={
                    "performance": spec.monitor.performance.model_copy(
                        update={"metric": "happiness"}
                    )
                }
            )
        }
    )
    waits: list[float] = []
    seen: list[TickError] = []

    def failed(error: TickError) -> None:
        seen.append(error)
        if len(seen) == 2:  # the operator fixes the file; the loop reads it before retrying
            fixed = yaml.safe_load(good)
            fixed["loop"]["model"] = _model(project)
            spec_file.write_text(yaml.safe_dump(fixed))

    try:
        result = run_loop(project, max_ticks=3, on_error=failed, sleep=waits.append)
    finally:
        spec_file.write_text(good)
    assert waits == [600.0, 600.0]  # no quick retries: they cannot help
    assert all(e.error["configuration"] for e in seen)
    assert "configuration error: monitor.performance.metric: 'happiness'" in str(seen[0])
    reasons = [e.reason or "" for e in _errors(project)]
    assert len(reasons) == 2 and all("fix mlcycle.yaml" in r for r in reasons)
    assert "2 in a row" in reasons[0]
    assert result.state.errors == 0 and project.spec.monitor.performance.metric is None


def test_once_exits_non_zero_and_status_shows_the_error(project: Project) -> None:
    _log(project, rows(60, changed=False, seed=8))
    corrupt = _corrupt_segment(project)
    name = _model(project)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MLCYCLE, "loop", *args, "--model", name],
            cwd=project.root,
            capture_output=True,
            text=True,
            timeout=120,
        )

    once = cli("--once")
    assert once.returncode == 1 and once.stderr.count("\n") == 1, once.stderr
    assert once.stderr.startswith("error: loop tick failed in idle (monitor): ArrowInvalid")
    status = json.loads(cli("status", "--json").stdout)
    assert status["errors"]["in_a_row"] == 1
    assert status["errors"]["last"]["message"].startswith("ArrowInvalid")
    assert "failing: 1 tick(s) in a row" in cli("status").stdout
    running = cli("--max-ticks", "2", "--interval", "0.1")  # the loop goes on after a failure
    lines = running.stderr.splitlines()
    assert running.returncode == 1 and len(lines) == 2, running.stderr  # the last tick failed too
    assert lines[0].endswith("(2 in a row; retrying in 0.4 s)")  # 0.1 s x 2^2
    assert json.loads(cli("status", "--json").stdout)["errors"]["in_a_row"] == 3
    corrupt.unlink()
    assert cli("--once").returncode == 0
    status = json.loads(cli("status", "--json").stdout)
    assert status["errors"]["in_a_row"] == 0 and status["errors"]["last"] is not None
    assert "last error (recovered since)" in cli("status").stdout


def test_two_odd_rows_trigger_nothing(project: Project) -> None:
    odd = rows(2, changed=False, seed=9)
    odd[FEATURES] = odd[FEATURES] * 50  # far out of distribution: 100 % of a tiny window
    _log(project, odd)
    result = tick(project)
    assert result.state.phase == "idle", result.steps
    assert any("too few rows for a drift verdict (2)" in s for s in result.steps), result.steps
