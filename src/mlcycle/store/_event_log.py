"""The audit log: who did what, when and why (the store's event records)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from mlcycle.store import _tables as t
from mlcycle.store._records import EventRecord, utc
from mlcycle.store._transactions import Transactions

__all__ = ["EventLog"]


class EventLog(Transactions):
    """Events: append one, list them newest first."""

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
        action: str | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        """Newest first; ``action`` keeps one kind (``monitor.report``)."""
        query = select(t.Event).order_by(t.Event.id.desc()).limit(limit)
        if action is not None:
            query = query.where(t.Event.action == action)
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
