"""The transaction rules every record family of the metadata store follows.

Each public method of :class:`~mlcycle.store.MetadataStore` is one
transaction, opened by :meth:`Transactions._write` (or :meth:`_read`, on a
read-only connection where the backend has one); every change that matters
writes its event (:meth:`_event`) in that same transaction, so the audit log
never disagrees with the data. The families (events, artifacts, datasets and
splits, runs with their metrics and tags, the model registry) are mixins and a
collaborating class over these few methods.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mlcycle.store import _tables as t
from mlcycle.store._engine import metadata_backend

__all__ = ["Transactions", "now"]


def now() -> datetime:
    return datetime.now(UTC)


class Transactions:
    """One SQL database, one transaction per public method, events written within it."""

    engine: Engine
    _sessions: sessionmaker[Session]
    _read_sessions: sessionmaker[Session]

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

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
                at=now(),
                actor=actor,
                action=action,
                entity_type=entity_type,
                entity_id=entity_id,
                reason=reason,
                details=dict(details or {}),
            )
        )
