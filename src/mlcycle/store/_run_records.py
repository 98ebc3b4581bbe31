"""Run records: runs, their metrics, tags, artifacts and heartbeats."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import CompoundSelect, delete, insert, select, union, update
from sqlalchemy.orm import Session

from mlcycle.errors import ConflictError, NotFoundError, StoreError
from mlcycle.store import _tables as t
from mlcycle.store._records import RUN_STATUSES, MetricPoint, RunRecord, RunStatus, utc
from mlcycle.store._transactions import Transactions, now

__all__ = ["RunRecords"]


class RunRecords(Transactions):
    """Runs: start, log metrics and tags, beat, finish, resume, look up, list, delete."""

    def create_run(
        self,
        *,
        name: str,
        params: Mapping[str, Any],
        actor: str,
        experiment: str = "default",
        dataset_version_id: int | None = None,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> RunRecord:
        """Start a run (status ``running``)."""
        started = now()
        run_id = uuid.uuid4().hex
        with self._write() as session:
            if parent_run_id is not None and session.get(t.Run, parent_run_id) is None:
                raise NotFoundError(f"parent run {parent_run_id!r} does not exist")
            session.add(
                t.Run(
                    id=run_id,
                    name=name,
                    experiment=experiment,
                    status="running",
                    params=dict(params),
                    summary={},
                    dataset_version_id=dataset_version_id,
                    parent_run_id=parent_run_id,
                    created_by=actor,
                    created_at=started,
                    started_at=started,
                    ended_at=None,
                )
            )
            session.add_all(
                t.RunTag(run_id=run_id, key=k, value=str(v)) for k, v in (tags or {}).items()
            )
            self._event(
                session,
                "run.created",
                "run",
                run_id,
                actor=actor,
                details={"name": name, "experiment": experiment},
            )
        return self.get_run(run_id)

    def log_metrics(
        self, run_id: str, points: Iterable[tuple[str, int, float]], *, at: datetime | None = None
    ) -> None:
        """Append metric points ``(key, step, value)`` to a run, in one transaction."""
        logged_at = at or now()
        rows = [
            {"run_id": run_id, "key": k, "step": int(s), "value": float(v), "logged_at": logged_at}
            for k, s, v in points
        ]
        if not rows:
            return
        with self._write() as session:
            self._running(session, run_id)
            session.execute(insert(t.Metric), rows)

    def heartbeat(self, run_id: str, *, every_s: float | None) -> None:
        """Record that the process doing a running run is alive and working.

        ``every_s`` is how often it means to beat (None: it does not know yet);
        readers judge a heartbeat stale against it. A run that is no longer
        running ignores the beat: the process may learn it was resumed or
        finished elsewhere only later, and a late beat changes nothing.
        """
        with self._write() as session:
            session.execute(
                update(t.Run)
                .where(t.Run.id == run_id, t.Run.status == "running")
                .values(heartbeat_at=now(), heartbeat_every_s=every_s)
            )

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set (or overwrite) tags on a run."""
        with self._write() as session:
            self._get_run_row(session, run_id)
            for key, value in tags.items():
                session.merge(t.RunTag(run_id=run_id, key=key, value=str(value)))

    def update_summary(self, run_id: str, summary: Mapping[str, Any]) -> None:
        """Merge ``summary`` into the run's summary."""
        with self._write() as session:
            row = self._get_run_row(session, run_id)
            row.summary = {**row.summary, **summary}

    def finish_run(
        self,
        run_id: str,
        status: RunStatus = "finished",
        *,
        actor: str,
        summary: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        """End a running run with ``status``; its summary gains ``summary``."""
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"status {status!r}: expected finished, failed or killed")
        with self._write() as session:
            row = self._running(session, run_id)
            row.status = status
            row.ended_at = now()
            row.summary = {**row.summary, **(summary or {})}
            self._event(session, f"run.{status}", "run", run_id, actor=actor)
        return self.get_run(run_id)

    def resume_run(self, run_id: str, *, actor: str) -> RunRecord:
        """Mark a run that was killed or failed (or whose process died) as running again."""
        with self._write() as session:
            row = self._get_run_row(session, run_id)
            if row.status == "finished":
                raise ConflictError(f"run {row.id} is finished: there is nothing to resume")
            previous = row.status
            row.status = "running"
            row.ended_at = None
            row.heartbeat_at, row.heartbeat_every_s = now(), None
            self._event(
                session, "run.resumed", "run", row.id, actor=actor, details={"was": previous}
            )
        return self.get_run(run_id)

    def add_run_artifact(self, run_id: str, path: str, sha256: str) -> None:
        """Attach a recorded artifact to a run under a logical ``path``."""
        with self._write() as session:
            self._get_run_row(session, run_id)
            session.merge(t.RunArtifact(run_id=run_id, path=path, artifact_sha256=sha256))

    def get_run(self, run_id: str) -> RunRecord:
        """A run by id, or by a unique prefix of at least 6 characters."""
        with self._read() as session:
            row = self._get_run_row(session, run_id)
            return self._run(session, row)

    def list_runs(
        self,
        *,
        experiment: str | None = None,
        status: RunStatus | None = None,
        name: str | None = None,
        parent: str | None = None,
        tags: Mapping[str, str] | None = None,
        dataset: str | None = None,
        dataset_version: int | None = None,
        limit: int | None = 100,
    ) -> list[RunRecord]:
        """Newest first; ``parent``: only the runs under that run (a study's trials).

        ``tags``: only runs carrying every one of these tags with these values;
        ``dataset`` (and ``dataset_version``): only runs trained on that dataset
        (that version of it). ``limit`` None: every run that matches.
        """
        query = select(t.Run).order_by(t.Run.created_at.desc(), t.Run.id)
        if limit is not None:
            query = query.limit(limit)
        for key, value in (tags or {}).items():
            query = query.where(
                select(t.RunTag.run_id)
                .where(t.RunTag.run_id == t.Run.id, t.RunTag.key == key, t.RunTag.value == value)
                .exists()
            )
        if dataset is not None:
            versions = (
                select(t.DatasetVersion.id)
                .join(t.Dataset, t.Dataset.id == t.DatasetVersion.dataset_id)
                .where(t.Dataset.name == dataset)
            )
            if dataset_version is not None:
                versions = versions.where(t.DatasetVersion.version == dataset_version)
            query = query.where(t.Run.dataset_version_id.in_(versions))
        if parent is not None:
            query = query.where(t.Run.parent_run_id == parent)
        if name is not None:
            query = query.where(t.Run.name == name)
        if experiment is not None:
            query = query.where(t.Run.experiment == experiment)
        if status is not None:
            query = query.where(t.Run.status == status)
        with self._read() as session:
            return [self._run(session, row) for row in session.scalars(query).all()]

    def delete_run(self, run_id: str, *, actor: str) -> tuple[str, list[str]]:
        """Delete a run's metadata (tags, metrics, artifact links); the run's id and orphans.

        Refused while a registered model version was made from the run. The
        artifacts the run referred to that nothing else refers to (another run,
        a dataset version or split, a model version's files, an audit) lose
        their records here; the returned hashes are those, whose bytes the
        caller removes. Runs under it keep their records, without a parent.

        Raises:
            ConflictError: a model version uses the run (named in the message).
        """
        with self._write() as session:
            row = self._get_run_row(session, run_id)
            used = session.execute(
                select(t.RegisteredModel.name, t.ModelVersion.version)
                .join(t.RegisteredModel, t.RegisteredModel.id == t.ModelVersion.model_id)
                .where(t.ModelVersion.run_id == row.id)
                .order_by(t.RegisteredModel.name, t.ModelVersion.version)
            ).first()
            if used is not None:
                raise ConflictError(
                    f"run {row.id} is used by model version {used[0]}@{used[1]}: "
                    "delete that version first"
                )
            shas = set(
                session.scalars(
                    select(t.RunArtifact.artifact_sha256).where(t.RunArtifact.run_id == row.id)
                )
            )
            session.execute(delete(t.RunArtifact).where(t.RunArtifact.run_id == row.id))
            session.execute(delete(t.RunTag).where(t.RunTag.run_id == row.id))
            session.execute(delete(t.Metric).where(t.Metric.run_id == row.id))
            session.execute(
                update(t.Run).where(t.Run.parent_run_id == row.id).values(parent_run_id=None)
            )
            session.delete(row)
            orphans: list[str] = []
            if shas:
                referenced = set(session.scalars(_referenced_artifacts(shas)))
                orphans = sorted(shas - referenced)
                if orphans:
                    session.execute(delete(t.Artifact).where(t.Artifact.sha256.in_(orphans)))
            self._event(
                session,
                "run.deleted",
                "run",
                row.id,
                actor=actor,
                details={"name": row.name, "experiment": row.experiment, "artifacts": orphans},
            )
            return row.id, orphans

    def get_metrics(self, run_id: str, key: str | None = None) -> list[MetricPoint]:
        """Metric points of a run in (key, step, insertion) order."""
        with self._read() as session:
            row = self._get_run_row(session, run_id)
            query = (
                select(t.Metric)
                .where(t.Metric.run_id == row.id)
                .order_by(t.Metric.key, t.Metric.step, t.Metric.id)
            )
            if key is not None:
                query = query.where(t.Metric.key == key)
            return [
                MetricPoint(key=m.key, step=m.step, value=m.value, logged_at=utc(m.logged_at))
                for m in session.scalars(query)
            ]

    def last_metric_values(self, run_ids: Iterable[str], key: str) -> dict[str, float]:
        """The value each run logged for ``key`` at its highest step (runs without it left out)."""
        ids = list(run_ids)
        if not ids:
            return {}
        query = (
            select(t.Metric.run_id, t.Metric.value)
            .where(t.Metric.run_id.in_(ids), t.Metric.key == key)
            .order_by(t.Metric.run_id, t.Metric.step, t.Metric.id)
        )
        with self._read() as session:
            return {run_id: value for run_id, value in session.execute(query)}

    def metric_keys(self, run_ids: Iterable[str]) -> list[str]:
        """The metric keys any of these runs logged, sorted."""
        ids = list(run_ids)
        if not ids:
            return []
        query = select(t.Metric.key).where(t.Metric.run_id.in_(ids)).distinct()
        with self._read() as session:
            return sorted(session.scalars(query))

    def _get_run_row(self, session: Session, run_id: str) -> t.Run:
        row = session.get(t.Run, run_id)
        if row is not None:
            return row
        if len(run_id) >= 6:
            matches = session.scalars(
                select(t.Run).where(t.Run.id.startswith(run_id, autoescape=True)).limit(2)
            ).all()
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise ConflictError(f"run id prefix {run_id!r} is ambiguous: give more characters")
        raise NotFoundError(f"run {run_id!r} does not exist")

    def _running(self, session: Session, run_id: str) -> t.Run:
        row = self._get_run_row(session, run_id)
        if row.status != "running":
            raise ConflictError(f"run {row.id} is {row.status}: it no longer takes changes")
        return row

    def _run(self, session: Session, row: t.Run) -> RunRecord:
        tags = {
            key: value
            for key, value in session.execute(
                select(t.RunTag.key, t.RunTag.value).where(t.RunTag.run_id == row.id)
            )
        }
        artifacts = {
            path: sha
            for path, sha in session.execute(
                select(t.RunArtifact.path, t.RunArtifact.artifact_sha256).where(
                    t.RunArtifact.run_id == row.id
                )
            )
        }
        return run_record(row, tags, artifacts)


def _referenced_artifacts(shas: set[str]) -> CompoundSelect[tuple[str]]:
    """Which of ``shas`` some record still refers to (every column naming an artifact)."""
    columns = (
        t.RunArtifact.artifact_sha256,
        t.DatasetVersion.artifact_sha256,
        t.DatasetSplit.artifact_sha256,
        t.ModelFile.artifact_sha256,
        t.ModelAudit.document_sha256,
        t.ModelAudit.report_sha256,
    )
    return union(*(select(column).where(column.in_(shas)) for column in columns))


def run_record(
    row: t.Run, tags: dict[str, str], artifacts: dict[str, str] | None = None
) -> RunRecord:
    """A run's row as its record, with the tags (and artifacts) read beside it.

    Raises:
        StoreError: the row holds a status mlcycle does not know.
    """
    status = row.status
    if status not in RUN_STATUSES:
        raise StoreError(f"run {row.id} has unknown status {status!r}")
    return RunRecord(
        id=row.id,
        name=row.name,
        experiment=row.experiment,
        status=status,
        params=row.params,
        summary=row.summary,
        tags=tags,
        dataset_version_id=row.dataset_version_id,
        parent_run_id=row.parent_run_id,
        created_by=row.created_by,
        created_at=utc(row.created_at),
        started_at=utc(row.started_at) if row.started_at else None,
        ended_at=utc(row.ended_at) if row.ended_at else None,
        artifacts=dict(artifacts or {}),
        heartbeat_at=utc(row.heartbeat_at) if row.heartbeat_at else None,
        heartbeat_every_s=row.heartbeat_every_s,
    )
