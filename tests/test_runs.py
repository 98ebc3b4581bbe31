"""Run states a person reads: a running run whose heartbeat went stale shows as interrupted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from mlcycle import Project, SpecError, _runs
from mlcycle._runs import HEARTBEAT_S


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    with Project.init(tmp_path / "proj", name="proj") as p:
        yield p


def test_a_stale_heartbeat_reads_as_interrupted(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLCYCLE_RUN_STALE_AFTER_S", raising=False)
    run = project.runs.start("train-ish")
    run.heartbeat()
    record = project.runs.get(run.id)
    assert record.heartbeat_at is not None and record.heartbeat_every_s == HEARTBEAT_S
    beat = record.heartbeat_at
    assert project.runs.state(record, now=beat + timedelta(seconds=59)) == "running"
    assert project.runs.state(record, now=beat + timedelta(seconds=61)) == "interrupted"
    monkeypatch.setenv("MLCYCLE_RUN_STALE_AFTER_S", "2")
    # Never below five heartbeat intervals, whatever the setting.
    assert project.runs.state(record, now=beat + timedelta(seconds=4)) == "running"
    assert project.runs.state(record, now=beat + timedelta(seconds=6)) == "interrupted"
    run.finish("finished")
    done = project.runs.get(run.id)
    assert project.runs.state(done, now=beat + timedelta(days=1)) == "finished"


def test_a_slow_process_declares_a_longer_interval(project: Project) -> None:
    run = project.runs.start("slow")
    run.heartbeat(expect_s=120.0)  # e.g. before an evaluation as long as the training
    record = project.runs.get(run.id)
    assert record.heartbeat_every_s == 120.0
    assert record.heartbeat_at is not None
    later = record.heartbeat_at + timedelta(seconds=500)
    assert project.runs.state(record, now=later) == "running"  # 500 s < 5 x 120 s
    assert project.runs.state(record, now=later + timedelta(seconds=101)) == "interrupted"


def test_heartbeats_are_written_at_most_once_a_second(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(_runs.time, "monotonic", lambda: clock[0])
    run = project.runs.start("busy")
    run.heartbeat()
    first = project.runs.get(run.id).heartbeat_at
    for _ in range(99):  # a hundred training steps within one second
        clock[0] += 0.01
        run.heartbeat()
    assert project.runs.get(run.id).heartbeat_at == first
    clock[0] += 0.02
    run.heartbeat()
    after = project.runs.get(run.id)
    assert after.heartbeat_at is not None and first is not None and after.heartbeat_at > first
    assert after.heartbeat_every_s == HEARTBEAT_S  # steps 10 ms apart: the floor interval


def test_a_run_that_never_beats_keeps_its_status(project: Project) -> None:
    run = project.runs.start("notebook")
    record = project.runs.get(run.id)
    assert record.heartbeat_at is None
    assert project.runs.state(record, now=record.created_at + timedelta(days=3)) == "running"


def test_a_bad_staleness_setting_is_one_clear_error(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = project.runs.start("r")
    run.heartbeat()
    monkeypatch.setenv("MLCYCLE_RUN_STALE_AFTER_S", "soon")
    with pytest.raises(SpecError, match="MLCYCLE_RUN_STALE_AFTER_S: 'soon' is not a number"):
        project.runs.state(project.runs.get(run.id))
