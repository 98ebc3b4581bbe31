"""Artifact records: the sha256, size, URI and media type of bytes in the artifact store."""

from __future__ import annotations

from mlcycle.errors import ConflictError, NotFoundError
from mlcycle.store import _tables as t
from mlcycle.store._records import ArtifactRecord, utc
from mlcycle.store._transactions import Transactions, now

__all__ = ["ArtifactRecords"]


class ArtifactRecords(Transactions):
    """Artifacts: record bytes already written, look one up."""

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
                    "created_at": now(),
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


def _artifact(row: t.Artifact) -> ArtifactRecord:
    return ArtifactRecord(
        sha256=row.sha256,
        size=row.size,
        uri=row.uri,
        media_type=row.media_type,
        created_at=utc(row.created_at),
    )
