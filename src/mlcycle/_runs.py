"""Tracked runs of a project: parameters, step-wise metrics, tags, artifacts.

The training loop (and tuning, compression, the retraining loop) record what
they do through :class:`ActiveRun`; a run that raises is marked ``failed``,
one interrupted by Ctrl-C ``killed``. A process killed without a word
(SIGKILL, out of memory, power loss) cannot mark its run, so a working run
beats a heartbeat (:meth:`ActiveRun.heartbeat`, at most one store write a
second); a running run whose heartbeat is older than
``max(MLCYCLE_RUN_STALE_AFTER_S (60 s), 5 x its heartbeat interval)`` shows
as ``interrupted`` (:meth:`Runs.state`), to be continued with
``mlcycle train --resume RUN``.

A run started from your own training code names the dataset version it
learns from (``runs.start(..., dataset="NAME@VERSION")``) and hands what it
trained to :meth:`ActiveRun.register`: the model enters the registry as any
version does (:func:`mlcycle.register_model`), its lineage naming the run.

Example:
    >>> import tempfile
    >>> from mlcycle.project import Project
    >>> project = Project.init(tempfile.mkdtemp(), name="demo")
    >>> with project.runs.start("try", params={"lr": 0.01}) as run:
    ...     run.log_metrics(0, {"loss": 0.7})
    >>> project.runs.get(run.id).status
    'finished'
    >>> project.close()
"""

from __future__ import annotations

import importlib
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from mlcycle import _settings
from mlcycle.errors import ConflictError, NotFoundError
from mlcycle.store import MetricPoint, ModelVersionRecord, RunRecord, RunStatus

if TYPE_CHECKING:
    from mlcycle.project import Project

__all__ = ["HEARTBEAT_S", "ActiveRun", "RunDeletion", "Runs", "resume_command"]

# At most one heartbeat write per this many seconds, however often it is called.
HEARTBEAT_S = 1.0
# A heartbeat is stale after this many of the run's own heartbeat intervals.
STALE_INTERVALS = 5


def resume_command(run_id: str) -> str:
    return f"mlcycle train --resume {run_id}"


class ActiveRun:
    """A run in progress. Use it as a context manager, or call :meth:`finish`."""

    def __init__(self, project: Project, record: RunRecord) -> None:
        self._project = project
        self.id = record.id
        self.name = record.name
        self._last_write = -math.inf
        self._last_call: float | None = None
        self._longest_gap = 0.0

    def heartbeat(self, *, expect_s: float | None = None) -> None:
        """Say that this run's process is alive and working; cheap enough to call every batch.

        At most one store write per :data:`HEARTBEAT_S`. Each write declares
        how often to expect the next: the longest gap seen between calls, or
        ``expect_s`` before a long silence (evaluation after training), which
        is written at once.
        """
        now = time.monotonic()
        if self._last_call is not None:
            self._longest_gap = max(self._longest_gap, now - self._last_call)
        self._last_call = now
        if expect_s is None and now - self._last_write < HEARTBEAT_S:
            return
        every = max(HEARTBEAT_S, self._longest_gap, expect_s or 0.0)
        self._project.store.heartbeat(self.id, every_s=every)
        self._last_write = now

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        """Record the values of several metrics at one step (an epoch, a batch)."""
        self._project.store.log_metrics(self.id, [(k, step, v) for k, v in metrics.items()])

    def log_metrics_rows(self, rows: Iterable[tuple[int, Mapping[str, float]]]) -> None:
        """Record several steps at once (one transaction)."""
        points = [(k, step, v) for step, metrics in rows for k, v in metrics.items()]
        self._project.store.log_metrics(self.id, points)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._project.store.set_tags(self.id, tags)

    def update_summary(self, summary: Mapping[str, Any]) -> None:
        self._project.store.update_summary(self.id, summary)

    def log_artifact(self, path: str, data: bytes | str | os.PathLike[str], media_type: str) -> str:
        """Store bytes (or a file's bytes) as an artifact of this run; returns its sha256."""
        artifacts = self._project.artifacts
        record = (
            artifacts.put_bytes(data, media_type)
            if isinstance(data, bytes)
            else artifacts.put_file(data, media_type)
        )
        self._project.store.add_run_artifact(self.id, path, record.sha256)
        return record.sha256

    def register(
        self,
        model: Any,
        name: str,
        *,
        alias: str | None = None,
        description: str | None = None,
    ) -> ModelVersionRecord:
        """Register the model this run trained (a torch module, a scikit-learn pipeline...).

        The run must name its dataset version (``runs.start(..., dataset="D@V")``);
        the version is checked, evaluated and stored as
        :func:`mlcycle.register_model` does, and records this run in its
        lineage; the run gets the test metrics and the HTML report.

        Raises:
            ConflictError: the run names no dataset version.
        """
        record = self._project.store.get_run(self.id)
        if record.dataset_version_id is None:
            raise ConflictError(
                f"run {self.id} names no dataset version: start it with "
                "runs.start(..., dataset='NAME@VERSION') to register what it trained"
            )
        dataset = self._project.store.get_dataset_version_by_id(record.dataset_version_id)
        # The workflows sit above the runs in the layers: looked up by module name on use,
        # as the registry's moved names are, so that the run API imports no stage.
        workflow = importlib.import_module("mlcycle.workflow")
        version: ModelVersionRecord = workflow.register_model(
            model,
            data=dataset.ref,
            name=name,
            alias=alias,
            project=self._project,
            description=description,
            run_id=self.id,
        )
        return version

    def finish(
        self, status: RunStatus = "finished", summary: Mapping[str, Any] | None = None
    ) -> RunRecord:
        return self._project.store.finish_run(
            self.id, status, actor=self._project.actor, summary=summary
        )

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._project.store.get_run(self.id).status != "running":
            return
        if exc_type is None:
            self.finish("finished")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("killed", {"error": "interrupted"})
        else:
            self.finish("failed", {"error": f"{exc_type.__name__}: {exc}"})


class Runs:
    """The runs of one project (``project.runs``)."""

    def __init__(self, project: Project) -> None:
        self._project = project

    def start(
        self,
        name: str,
        *,
        params: Mapping[str, Any] | None = None,
        dataset: str | None = None,
        parent: str | None = None,
        tags: Mapping[str, str] | None = None,
        experiment: str = "default",
    ) -> ActiveRun:
        """Start a run; ``dataset`` is a dataset reference (``name@version``) it trains on."""
        version_id = self._project.datasets.get(dataset).id if dataset else None
        record = self._project.store.create_run(
            name=name,
            params=params or {},
            actor=self._project.actor,
            experiment=experiment,
            dataset_version_id=version_id,
            parent_run_id=parent,
            tags=tags,
        )
        return ActiveRun(self._project, record)

    def get(self, run_id: str) -> RunRecord:
        return self._project.store.get_run(run_id)

    def state(self, run: RunRecord, now: datetime | None = None) -> str:
        """The run's status as a person should read it: ``interrupted`` for a dead ``running`` one.

        A running run is interrupted when its heartbeat is older than
        ``max(MLCYCLE_RUN_STALE_AFTER_S, 5 x its heartbeat interval)``. A run
        that never beat (not a training run) keeps its stored status.
        """
        if run.status != "running" or run.heartbeat_at is None:
            return run.status
        limit = max(_settings.run_stale_after_s(), STALE_INTERVALS * (run.heartbeat_every_s or 0))
        age = ((now or datetime.now(UTC)) - run.heartbeat_at).total_seconds()
        return "interrupted" if age > limit else "running"

    def metrics(self, run_id: str, key: str | None = None) -> list[MetricPoint]:
        return self._project.store.get_metrics(run_id, key)

    def list(
        self,
        *,
        experiment: str | None = None,
        status: RunStatus | None = None,
        tags: Mapping[str, str] | None = None,
        dataset: str | None = None,
        limit: int | None = 100,
    ) -> list[RunRecord]:
        """Runs newest first, filtered in the store.

        Args:
            tags: only runs with every one of these tags at these values.
            dataset: ``NAME`` (runs on any version of it) or ``NAME@VERSION``.
            limit: at most this many (None: all that match).
        """
        name, version = (None, None)
        if dataset is not None:
            from mlcycle._datasets import parse_ref

            name, version = parse_ref(dataset)
        return self._project.store.list_runs(
            experiment=experiment,
            status=status,
            tags=tags,
            dataset=name,
            dataset_version=version,
            limit=limit,
        )

    def tag(self, run_id: str, tags: Mapping[str, str]) -> RunRecord:
        """Set (or overwrite) tags of a run, whatever its status; the run as it is now."""
        record = self.get(run_id)
        self._project.store.set_tags(record.id, tags)
        return self.get(record.id)

    def delete(self, run_id: str) -> RunDeletion:
        """Delete a run: its metadata, its report, and the artifacts nothing else uses.

        An artifact another run, a dataset version or a model version also
        refers to stays (artifacts are shared by content).

        Raises:
            ConflictError: a registered model version was made from the run.
        """
        record = self.get(run_id)
        deleted, orphans = self._project.store.delete_run(record.id, actor=self._project.actor)
        removed = 0
        for sha in orphans:
            try:
                self._project.store.get_artifact(sha)
                continue  # the same bytes were stored again meanwhile: they stay
            except NotFoundError:
                removed += self._project.artifacts.blobs.delete(sha)
        report = record.summary.get("report")  # the HTML copy the evaluation left in the project
        if isinstance(report, str) and Path(report).name == f"{deleted}.html":
            Path(report).unlink(missing_ok=True)
        return RunDeletion(
            run_id=deleted,
            name=record.name,
            artifacts_deleted=removed,
            artifacts_kept=len(set(record.artifacts.values())) - removed,
        )


@dataclass(frozen=True)
class RunDeletion:
    """What deleting a run removed: blobs only it used go, shared ones stay."""

    run_id: str
    name: str
    artifacts_deleted: int
    artifacts_kept: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
