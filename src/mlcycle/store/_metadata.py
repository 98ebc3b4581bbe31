"""The metadata store: what exists, where its bytes are, and who changed what.

One class over SQLAlchemy that works the same on SQLite and PostgreSQL (the
conformance suite in ``tests/store`` runs on both). Each public method is one
transaction; every change that matters writes an event in the same
transaction, so the audit log never disagrees with the data.

Example:
    >>> store = MetadataStore("sqlite://")
    >>> run = store.create_run(name="first", params={"lr": 0.1}, actor="me")
    >>> store.log_metrics(run.id, [("loss", 0, 0.9), ("loss", 1, 0.5)])
    >>> [p.value for p in store.get_metrics(run.id, "loss")]
    [0.9, 0.5]
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from mlcycle.errors import ConflictError, NotFoundError, StoreError
from mlcycle.store import _tables as t
from mlcycle.store._engine import READ_ONLY, make_engine, metadata_backend, upgrade
from mlcycle.store._names import check_name
from mlcycle.store._records import (
    RUN_STATUSES,
    ArtifactRecord,
    DatasetRecord,
    DatasetVersionRecord,
    EventRecord,
    MetricPoint,
    RunRecord,
    RunStatus,
    SplitRecord,
    utc,
)
from mlcycle.store._registry import RegistryStore

__all__ = ["MetadataStore"]


def _now() -> datetime:
    return datetime.now(UTC)


class MetadataStore:
    """Datasets, runs, artifacts and the event log, in one SQL database.

    Args:
        url: a SQLAlchemy URL (``sqlite:///path.db`` or ``postgresql://…``).
        migrate: apply pending schema migrations first (the default).
    """

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine: Engine = make_engine(url)
        if migrate:
            upgrade(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )
        self.registry = RegistryStore(self)

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._read_sessions.begin() as session:
            yield session

    def _insert_ignore(self, session: Session, table: Any, values: Mapping[str, Any]) -> None:
        session.execute(metadata_backend(self.backend).insert_ignore(table, values))

    # -- events -----------------------------------------------------------------

    def _event(
        self,
        session: Session,
        action: str,
        entity_type: str,
        entity_id: str,
        *,
        actor: str,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        session.add(
            t.Event(
                at=_now(),
                actor=actor,
                action=action,
                entity_type=entity_type,
                entity_id=entity_id,
                reason=reason,
                details=dict(details or {}),
            )
        )

    def record_event(
        self,
        action: str,
        entity_type: str,
        entity_id: str,
        *,
        actor: str,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one event to the audit log."""
        with self._write() as session:
            self._event(
                session, action, entity_type, entity_id, actor=actor, reason=reason, details=details
            )

    def list_events(
        self,
        *,
        entity_type: str | None = None,
        entity_id: str | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        """Newest first."""
        query = select(t.Event).order_by(t.Event.id.desc()).limit(limit)
        if entity_type is not None:
            query = query.where(t.Event.entity_type == entity_type)
        if entity_id is not None:
            query = query.where(t.Event.entity_id == entity_id)
        with self._read() as session:
            return [
                EventRecord(
                    id=e.id,
                    at=utc(e.at),
                    actor=e.actor,
                    action=e.action,
                    entity_type=e.entity_type,
                    entity_id=e.entity_id,
                    reason=e.reason,
                    details=e.details,
                )
                for e in session.scalars(query)
            ]

    # -- artifacts --------------------------------------------------------------

    def record_artifact(self, sha256: str, size: int, uri: str, media_type: str) -> ArtifactRecord:
        """Record bytes already written to the artifact store; idempotent per sha256."""
        with self._write() as session:
            self._insert_ignore(
                session,
                t.Artifact,
                {
                    "sha256": sha256,
                    "size": size,
                    "uri": uri,
                    "media_type": media_type,
                    "created_at": _now(),
                },
            )
            row = session.get_one(t.Artifact, sha256)
            if row.size != size:
                raise ConflictError(
                    f"artifact {sha256} is recorded with {row.size} bytes, not {size}"
                )
            return _artifact(row)

    def get_artifact(self, sha256: str) -> ArtifactRecord:
        with self._read() as session:
            row = session.get(t.Artifact, sha256)
            if row is None:
                raise NotFoundError(f"artifact {sha256} is not recorded in the store")
            return _artifact(row)

    # -- datasets ---------------------------------------------------------------

    def add_dataset_version(
        self,
        name: str,
        *,
        fingerprint: str,
        artifact_sha256: str,
        source: str,
        n_rows: int,
        schema: Mapping[str, Any],
        profile: Mapping[str, Any],
        actor: str,
    ) -> tuple[DatasetVersionRecord, bool]:
        """Version new content of dataset ``name``, or find the version it already is.

        Returns:
            The version, and whether it was created now (``False``: same fingerprint seen).

        Raises:
            InvalidNameError: ``name`` breaks the naming rule.
        """
        check_name(name, "dataset name")
        with self._write() as session:
            self._insert_ignore(
                session, t.Dataset, {"name": name, "created_at": _now(), "created_by": actor}
            )
            # Lock the dataset row: concurrent adds to one dataset queue here (PostgreSQL;
            # SQLite already holds the write lock), so version numbers never collide.
            dataset = session.scalars(
                select(t.Dataset).where(t.Dataset.name == name).with_for_update()
            ).one()
            existing = session.scalars(
                select(t.DatasetVersion).where(
                    t.DatasetVersion.dataset_id == dataset.id,
                    t.DatasetVersion.fingerprint == fingerprint,
                )
            ).first()
            if existing is not None:
                return _version(existing, name), False
            latest = session.scalar(
                select(func.max(t.DatasetVersion.version)).where(
                    t.DatasetVersion.dataset_id == dataset.id
                )
            )
            row = t.DatasetVersion(
                dataset_id=dataset.id,
                version=(latest or 0) + 1,
                fingerprint=fingerprint,
                artifact_sha256=artifact_sha256,
                source=source,
                n_rows=n_rows,
                schema=dict(schema),
                profile=dict(profile),
                created_at=_now(),
                created_by=actor,
            )
            session.add(row)
            session.flush()
            self._event(
                session,
                "dataset.version_added",
                "dataset",
                f"{name}@{row.version}",
                actor=actor,
                details={"fingerprint": fingerprint, "rows": n_rows, "source": source},
            )
            return _version(row, name), True

    def get_dataset_version(self, name: str, version: int | None = None) -> DatasetVersionRecord:
        """Version ``version`` of ``name``, or its latest when ``version`` is ``None``."""
        with self._read() as session:
            dataset = session.scalars(select(t.Dataset).where(t.Dataset.name == name)).first()
            if dataset is None:
                known = session.scalars(select(t.Dataset.name).order_by(t.Dataset.name)).all()
                hint = f"; known: {', '.join(known)}" if known else "; no dataset is versioned yet"
                raise NotFoundError(f"dataset {name!r} does not exist{hint}")
            query = select(t.DatasetVersion).where(t.DatasetVersion.dataset_id == dataset.id)
            if version is None:
                query = query.order_by(t.DatasetVersion.version.desc())
            else:
                query = query.where(t.DatasetVersion.version == version)
            row = session.scalars(query).first()
            if row is None:
                raise NotFoundError(f"dataset {name!r} has no version {version}")
            return _version(row, name)

    def get_dataset_version_by_id(self, version_id: int) -> DatasetVersionRecord:
        with self._read() as session:
            row = session.get(t.DatasetVersion, version_id)
            if row is None:
                raise NotFoundError(f"dataset version id {version_id} does not exist")
            name = session.get_one(t.Dataset, row.dataset_id).name
            return _version(row, name)

    def list_datasets(self) -> list[DatasetRecord]:
        query = (
            select(
                t.Dataset.name,
                t.Dataset.created_at,
                func.count(t.DatasetVersion.id),
                func.max(t.DatasetVersion.version),
            )
            .outerjoin(t.DatasetVersion, t.DatasetVersion.dataset_id == t.Dataset.id)
            .group_by(t.Dataset.id, t.Dataset.name, t.Dataset.created_at)
            .order_by(t.Dataset.name)
        )
        with self._read() as session:
            return [
                DatasetRecord(name=name, versions=count, latest=latest, created_at=utc(created))
                for name, created, count, latest in session.execute(query)
            ]

    def list_dataset_versions(self, name: str) -> list[DatasetVersionRecord]:
        with self._read() as session:
            rows = session.scalars(
                select(t.DatasetVersion)
                .join(t.Dataset, t.Dataset.id == t.DatasetVersion.dataset_id)
                .where(t.Dataset.name == name)
                .order_by(t.DatasetVersion.version)
            ).all()
            if not rows:
                self.get_dataset_version(name)  # raises NotFoundError with a hint
            return [_version(row, name) for row in rows]

    def record_split(
        self,
        version_id: int,
        key: str,
        *,
        config: Mapping[str, Any],
        counts: Mapping[str, int],
        artifact_sha256: str,
    ) -> SplitRecord:
        """Record a split of a version once; later calls return the first record."""
        with self._write() as session:
            self._insert_ignore(
                session,
                t.DatasetSplit,
                {
                    "version_id": version_id,
                    "key": key,
                    "config": dict(config),
                    "counts": dict(counts),
                    "artifact_sha256": artifact_sha256,
                    "created_at": _now(),
                },
            )
            row = session.scalars(
                select(t.DatasetSplit).where(
                    t.DatasetSplit.version_id == version_id, t.DatasetSplit.key == key
                )
            ).one()
            return _split(row)

    def get_split(self, version_id: int, key: str | None = None) -> SplitRecord:
        """The split ``key`` of a version, or the first one recorded for it."""
        query = select(t.DatasetSplit).where(t.DatasetSplit.version_id == version_id)
        query = query.where(t.DatasetSplit.key == key) if key else query.order_by(t.DatasetSplit.id)
        with self._read() as session:
            row = session.scalars(query).first()
            if row is None:
                raise NotFoundError(f"dataset version id {version_id} has no split {key or ''}")
            return _split(row)

    # -- runs -------------------------------------------------------------------

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
        now = _now()
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
                    created_at=now,
                    started_at=now,
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
        logged_at = at or _now()
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
                .values(heartbeat_at=_now(), heartbeat_every_s=every_s)
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
            row.ended_at = _now()
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
            row.heartbeat_at, row.heartbeat_every_s = _now(), None
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


def _artifact(row: t.Artifact) -> ArtifactRecord:
    return ArtifactRecord(
        sha256=row.sha256,
        size=row.size,
        uri=row.uri,
        media_type=row.media_type,
        created_at=utc(row.created_at),
    )


def _version(row: t.DatasetVersion, name: str) -> DatasetVersionRecord:
    return DatasetVersionRecord(
        id=row.id,
        dataset=name,
        version=row.version,
        fingerprint=row.fingerprint,
        artifact_sha256=row.artifact_sha256,
        source=row.source,
        n_rows=row.n_rows,
        schema=row.schema,
        profile=row.profile,
        created_at=utc(row.created_at),
        created_by=row.created_by,
    )


def _split(row: t.DatasetSplit) -> SplitRecord:
    return SplitRecord(
        version_id=row.version_id,
        key=row.key,
        config=row.config,
        counts={k: int(v) for k, v in row.counts.items()},
        artifact_sha256=row.artifact_sha256,
    )
