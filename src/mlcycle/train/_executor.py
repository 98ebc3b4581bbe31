"""Training jobs and the ``local`` executor, which runs them in this process.

:func:`mlcycle.train.train` and :func:`mlcycle.train.resume` describe what to
do as a :class:`TrainJob` and hand it to the executor that ``train.executor``
names (:data:`mlcycle.plugins.EXECUTORS`), so where training runs is one
boundary: a new executor is one new file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlcycle.plugins import EXECUTORS
from mlcycle.train._base import Executor

if TYPE_CHECKING:
    from mlcycle.project import Project
    from mlcycle.train._run import TrainOutcome

__all__ = ["LocalExecutor", "TrainJob", "executor"]


@dataclass(frozen=True)
class TrainJob:
    """One training to run: a new run (``resume`` None) or the continuation of one.

    Plain data, so that an executor can send it to another process or machine.
    """

    data: str | None = None
    model: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    device: str | None = None
    quiet: bool = True
    name: str | None = None
    resume: str | None = None

    def run_here(self, project: Project) -> TrainOutcome:
        """Train in this process (what every executor ends up calling where it runs)."""
        from mlcycle.train._run import resume_here, train_here

        if self.resume is not None:
            return resume_here(project, self.resume, quiet=self.quiet)
        return train_here(
            project,
            data=self.data,
            model=self.model,
            overrides=self.overrides,
            device=self.device,
            quiet=self.quiet,
            name=self.name,
        )


class LocalExecutor(Executor):
    """Runs the job in this process, on this machine's devices."""

    name = "local"

    def run(self, project: Project, job: TrainJob) -> TrainOutcome:
        return job.run_here(project)


def executor(name: str) -> Executor:
    """The executor registered as ``name``, constructed.

    Raises:
        SpecError: no executor has that name (the message lists those there are).
    """
    return EXECUTORS.get(name)()
