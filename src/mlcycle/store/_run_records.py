"""Run records: runs, their metrics, tags, artifacts and heartbeats."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from mlcycle.errors import ConflictError, NotFoundError, StoreError
from mlcycle.store import _tables as t
from mlcycle.store._records import RUN_STATUSES, MetricPoint, RunRecord, RunStatus, utc
from mlcycle.store._transactions import Transactions, now

__all__ = ["RunRecords"]


class RunRecords(Transactions):
    """Runs: start, log metrics and tags, beat, finish, resume, look up, list."""

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
        limit: int = 100,
    ) -> list[RunRecord]:
        """Newest first."""
        query = select(t.Run).order_by(t.Run.created_at.desc(), t.Run.id).limit(limit)
        if name is not None:
            query = query.where(t.Run.name == name)
        if experiment is not None:
            query = query.where(t.Run.experiment == experiment)
        if status is not None:
            query = query.where(t.Run.status == status)
        with self._read() as session:
            return [self._run(session, row) for row in session.scalars(query).all()]

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
            artifacts=artifacts,
            heartbeat_at=utc(row.heartbeat_at) if row.heartbeat_at else None,
            heartbeat_every_s=row.heartbeat_every_s,
        )
