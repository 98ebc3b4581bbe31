"""Tracked runs of a project: parameters, step-wise metrics, tags, artifacts.

The training loop (and tuning, compression, the retraining loop) record what
they do through :class:`ActiveRun`; a run that raises is marked ``failed``,
one interrupted by Ctrl-C ``killed``.

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

import os
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from mlcycle.store import MetricPoint, RunRecord, RunStatus

if TYPE_CHECKING:
    from mlcycle.project import Project

__all__ = ["ActiveRun", "Runs"]


class ActiveRun:
    """A run in progress. Use it as a context manager, or call :meth:`finish`."""

    def __init__(self, project: Project, record: RunRecord) -> None:
        self._project = project
        self.id = record.id
        self.name = record.name

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

    def metrics(self, run_id: str, key: str | None = None) -> list[MetricPoint]:
        return self._project.store.get_metrics(run_id, key)

    def list(
        self, *, experiment: str | None = None, status: RunStatus | None = None, limit: int = 100
    ) -> list[RunRecord]:
        return self._project.store.list_runs(experiment=experiment, status=status, limit=limit)
