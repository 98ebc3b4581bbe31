"""PostgreSQL, the metadata backend for a team: a server that many machines share.

Needs psycopg (``pip install 'mlcycle[postgres]'``); ``postgresql://`` URLs use
it whatever driver they name. Two processes migrating one database serialise
on a transaction-scoped advisory lock.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, Connection
from sqlalchemy.sql.expression import Executable

from mlcycle.errors import StoreError
from mlcycle.store._base import MetadataBackend

__all__ = ["PostgreSQLBackend"]

_MIGRATION_LOCK = 0x6D6C6379  # "mlcy"


class PostgreSQLBackend(MetadataBackend):
    """``postgresql://user@host:5432/db`` (through psycopg 3)."""

    def create_engine(self, url: URL) -> Engine:
        if url.get_driver_name() in ("psycopg2", ""):
            url = url.set(drivername="postgresql+psycopg")
        try:
            return create_engine(url, pool_pre_ping=True)
        except ModuleNotFoundError:
            raise StoreError("PostgreSQL needs psycopg: pip install 'mlcycle[postgres]'") from None

    def insert_ignore(self, table: Any, values: Mapping[str, Any]) -> Executable:
        return postgresql.insert(table).values(**values).on_conflict_do_nothing()

    def lock_migrations(self, connection: Connection) -> None:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})

    @contextmanager
    def lease(self, engine: Engine, key: str) -> Iterator[bool]:
        """A session advisory lock: the server releases it when the connection goes."""
        with engine.connect() as connection:
            arg = {"key": key}
            held = bool(
                connection.execute(
                    text("SELECT pg_try_advisory_lock(hashtext(:key))"), arg
                ).scalar()
            )
            connection.commit()  # the lock is the session's: no transaction left open
            try:
                yield held
            finally:
                if held:
                    connection.execute(text("SELECT pg_advisory_unlock(hashtext(:key))"), arg)
                    connection.commit()
