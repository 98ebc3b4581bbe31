"""Dataset records: datasets, their content-addressed versions and their recorded splits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select

from mlcycle.errors import NotFoundError
from mlcycle.store import _tables as t
from mlcycle.store._names import check_name
from mlcycle.store._records import DatasetRecord, DatasetVersionRecord, SplitRecord, utc
from mlcycle.store._transactions import Transactions, now

__all__ = ["DatasetRecords"]


class DatasetRecords(Transactions):
    """Datasets and splits: add a version (idempotent per content), list, look up, split."""

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
                session, t.Dataset, {"name": name, "created_at": now(), "created_by": actor}
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
                created_at=now(),
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
                    "created_at": now(),
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
