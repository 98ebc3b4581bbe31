"""Every registered executor runs the conformance suite; a new one is one class."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

import pytest

from mlcycle.errors import SpecError
from mlcycle.plugins import EXECUTORS
from mlcycle.spec import parse_spec
from mlcycle.train import Executor, TrainJob
from tests.conformance.executors import ExecutorConformance

if TYPE_CHECKING:
    from mlcycle.project import Project
    from mlcycle.train import TrainOutcome


class TestLocal(ExecutorConformance):
    name = "local"


def test_every_built_in_runs_the_suite() -> None:
    covered = {cls.name for cls in ExecutorConformance.__subclasses__()}
    assert set(EXECUTORS.names()) <= covered


class ThreadExecutor(Executor):
    """A toy executor, as a user would write it in one file: each job on a thread of its own."""

    name = "thread"
    jobs: ClassVar[list[TrainJob]] = []

    def run(self, project: Project, job: TrainJob) -> TrainOutcome:
        done: dict[str, object] = {}

        def work() -> None:
            try:
                done["outcome"] = job.run_here(project)
            except BaseException as exc:  # handed back to the caller below
                done["error"] = exc

        thread = threading.Thread(target=work, name=f"train-{job.name or job.data}")
        thread.start()
        thread.join()
        self.jobs.append(job)
        if "error" in done:
            raise done["error"]  # type: ignore[misc]
        return done["outcome"]  # type: ignore[return-value]


@pytest.fixture
def thread_executor() -> Iterator[type[ThreadExecutor]]:
    EXECUTORS.register("thread")(ThreadExecutor)
    yield ThreadExecutor
    EXECUTORS.unregister("thread")
    ThreadExecutor.jobs.clear()


@pytest.mark.usefixtures("thread_executor")
class TestThread(ExecutorConformance):
    """A new executor: its class and one registration line, and it passes the suite."""

    name = "thread"

    def test_training_from_the_spec_goes_through_it(self, project: Project) -> None:
        from mlcycle.train import train

        train(project, data="sklearn:iris", name="via-thread")
        assert [job.name for job in ThreadExecutor.jobs] == ["via-thread"]


def test_an_unregistered_executor_is_refused_with_the_registered_names() -> None:
    with pytest.raises(SpecError, match=r"unknown executor; registered: local, ray$"):
        parse_spec({"train": {"executor": "thread"}})


@pytest.mark.slow
class TestRay(ExecutorConformance):
    """Ray started in this process on this machine's CPUs (a one-node cluster)."""

    name = "ray"
