"""Training jobs and the ``local`` executor, which runs them in this process.

:func:`mlcycle.train.train` and :func:`mlcycle.train.resume` describe what to
do as a :class:`TrainJob` and hand it to the executor that ``train.executor``
names (:data:`mlcycle.plugins.EXECUTORS`), so where training runs is one
boundary: a new executor is one new file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlcycle.errors import SpecError
from mlcycle.plugins import EXECUTORS
from mlcycle.train._base import Executor
from mlcycle.train._loop import Replicas
from mlcycle.train._progress import ProgressCallback, interactive
from mlcycle.train._run import TrainOutcome, replicate_here, resume_here, train_here

if TYPE_CHECKING:
    from mlcycle.project import Project

__all__ = ["LocalExecutor", "TrainJob", "executor", "resume", "train"]


@dataclass(frozen=True)
class TrainJob:
    """One training to run: a new run (``resume`` None) or the continuation of one.

    Plain data, so that an executor can send it to another process or machine;
    the two callbacks are not part of it (an executor that runs the job elsewhere
    relays the events to them, or leaves them out).
    """

    data: str | None = None
    model: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    device: str | None = None
    quiet: bool = True
    name: str | None = None
    resume: str | None = None
    experiment: str = "default"
    tags: Mapping[str, str] = field(default_factory=dict)
    on_start: Callable[[str], None] | None = field(default=None, compare=False, repr=False)
    on_progress: ProgressCallback | None = field(default=None, compare=False, repr=False)

    def run_here(self, project: Project, replicas: Replicas | None = None) -> TrainOutcome:
        """Train in this process (what every executor ends up calling where it runs).

        With ``replicas``, this process is replica 0 of a data-parallel training
        (the one that records the run; the others call :meth:`replicate_here`).
        """
        if self.resume is not None:
            return resume_here(
                project,
                self.resume,
                quiet=self.quiet,
                on_progress=self.on_progress,
                replicas=replicas,
            )
        return train_here(
            project,
            data=self.data,
            model=self.model,
            overrides=self.overrides,
            device=self.device,
            quiet=self.quiet,
            name=self.name,
            experiment=self.experiment,
            tags=self.tags,
            on_start=self.on_start,
            on_progress=self.on_progress,
            replicas=replicas,
        )

    def replicate_here(self, project: Project, replicas: Replicas) -> None:
        """Train as replica ``replicas.rank`` (not 0) of a data-parallel training of this job."""
        replicate_here(
            project,
            replicas,
            data=self.data,
            model=self.model,
            overrides=self.overrides,
            device=self.device,
            resume=self.resume,
        )


class LocalExecutor(Executor):
    """Runs the job in this process, on this machine's devices.

    A run of several data-parallel ``train.workers`` needs an executor that
    starts them (``ray``): a new one is refused here, while a run that had them
    resumes here in one process (the same batches, the same steps).
    """

    name = "local"

    def run(self, project: Project, job: TrainJob) -> TrainOutcome:
        if job.resume is None:
            workers = project.spec.with_overrides(job.overrides).train.workers
            if workers > 1:
                raise SpecError(
                    f"train.workers: {workers} needs train.executor: ray (the local "
                    "executor trains in one process; set workers: 1 or use --executor ray)"
                )
        return job.run_here(project)


def executor(name: str) -> Executor:
    """The executor registered as ``name``, constructed.

    Raises:
        SpecError: no executor has that name (the message lists those there are).
    """
    return EXECUTORS.get(name)()


def train(
    project: Project,
    *,
    data: str | None = None,
    model: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    device: str | None = None,
    quiet: bool | None = None,
    name: str | None = None,
    experiment: str = "default",
    tags: Mapping[str, str] | None = None,
    on_start: Callable[[str], None] | None = None,
    on_progress: ProgressCallback | None = None,
    executor: str | None = None,
) -> TrainOutcome:
    """Train a model on a dataset version of ``project`` and evaluate it on the test split.

    The training runs where ``executor`` or else ``train.executor`` says
    (``local``: this process; ``ray``: a Ray cluster).

    Args:
        data: ``NAME[@VERSION]`` (or a source to version first); default ``train.data``
            or the project's only dataset.
        model: a model kind (``mlp``, ``cnn``, ``gbm``, ``custom``, ``auto`` or a
            registered one), overriding ``train.model.kind``.
        overrides: dotted spec keys (``lr``, ``train.model.hidden``) for this run only.
        device: ``auto``, ``cpu``, ``cuda``; overrides ``train.device``.
        quiet: print no progress; by default a line per epoch goes to stderr when
            it is a terminal or a notebook shows it (not with ``on_progress``).
        name: the run's name (default ``<model kind>-<dataset>``).
        experiment: the experiment the run is filed under (``runs list --experiment``).
        tags: tags of the run besides the ``model`` and ``task`` it always gets
            (``runs list --tag k=v``).
        on_start: called with the run's id once the run is recorded, before the
            first epoch (the loop notes it, to resume this run if it is killed).
        on_progress: called with an :class:`~mlcycle.train.EpochProgress` after
            every epoch (``mlcycle train`` draws its progress bar from them).

    Raises:
        SpecError: an override or the spec does not fit the data.
        DataError: the dataset cannot be trained on (no target, no validation rows).
    """
    spec = project.spec.with_overrides(overrides) if overrides else project.spec
    job = TrainJob(
        data,
        model,
        dict(overrides or {}),
        device,
        not interactive() if quiet is None else quiet,
        name,
        experiment=experiment,
        tags=dict(tags or {}),
        on_start=on_start,
        on_progress=on_progress,
    )
    return EXECUTORS.get(executor or spec.train.executor)().run(project, job)


def resume(
    project: Project,
    run_id: str,
    *,
    quiet: bool | None = None,
    on_progress: ProgressCallback | None = None,
    executor: str | None = None,
) -> TrainOutcome:
    """Continue a run whose process was killed, from its last checkpoint.

    On the CPU the resumed run ends with the same weights as an uninterrupted one.
    It runs where ``executor`` or else the project's ``train.executor``
    says; ``quiet`` and ``on_progress`` are :func:`train`'s.

    Raises:
        ConflictError: the run already finished.
        NotFoundError: no such run.
    """
    job = TrainJob(
        quiet=not interactive() if quiet is None else quiet,
        resume=run_id,
        on_progress=on_progress,
    )
    return EXECUTORS.get(executor or project.spec.train.executor)().run(project, job)
