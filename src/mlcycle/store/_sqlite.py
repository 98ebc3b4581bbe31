"""SQLite, the default metadata backend: one file, several processes on one machine.

The engine is tuned for several processes on one laptop: WAL journal, a busy
timeout, foreign keys on, and write transactions that take the write lock at
``BEGIN`` (``BEGIN IMMEDIATE``) so that two writers queue instead of failing
with "database is locked" half-way through. Read transactions (the store's
``_read()`` sessions, the schema check on open) begin deferred and never take
the write lock: with WAL they read the last committed state while another
process writes. A writer that waits more than a second for the lock says so
once, in the ``mlcycle.store`` log. The write lock taken at ``BEGIN`` is also
what serialises two processes migrating one database.
"""

from __future__ import annotations

import itertools
import logging
import random
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL, Connection
from sqlalchemy.sql.expression import Executable

from mlcycle.errors import StoreError
from mlcycle.store._base import MetadataBackend
from mlcycle.store._engine import READ_ONLY

__all__ = ["SQLiteBackend"]

BUSY_TIMEOUT_S = 60.0  # how long a SQLite writer waits for the write lock in all
SAY_WAITING_AFTER_S = 1.0  # ... and after how long it says that it is waiting

log = logging.getLogger("mlcycle.store")


class SQLiteBackend(MetadataBackend):
    """``sqlite:///path/to/mlcycle.db`` (``sqlite://``: in memory)."""

    def create_engine(self, url: URL) -> Engine:
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
        _tune_sqlite(engine, url.database or ":memory:")
        return engine

    def insert_ignore(self, table: Any, values: Mapping[str, Any]) -> Executable:
        return sqlite.insert(table).values(**values).on_conflict_do_nothing()


def _tune_sqlite(engine: Engine, where: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite; "begin" below issues BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")  # deferred: a reader never takes the write lock
        else:
            _begin_immediate(connection.connection.dbapi_connection, where)


def _begin_immediate(dbapi_connection: Any, where: str) -> None:
    """``BEGIN IMMEDIATE``; if another process holds the write lock, say so once, then wait.

    The first second is waited silently (most writes are that short); then the
    wait goes on for the rest of :data:`BUSY_TIMEOUT_S` after one log line.
    """
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={int(SAY_WAITING_AFTER_S * 1000)}")
        try:
            cursor.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
        log.warning("waiting for the store's write lock on %s (held by another process)…", where)
        cursor.execute(f"PRAGMA busy_timeout={int((BUSY_TIMEOUT_S - SAY_WAITING_AFTER_S) * 1000)}")
        try:
            cursor.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            raise StoreError(
                f"the store's write lock on {where} was held by another process for over "
                f"{BUSY_TIMEOUT_S:.0f} s: gave up waiting (a long-running command, or a "
                "process stopped while writing)"
            ) from None
    finally:
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cursor.close()


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED") or (
        "locked" in str(exc)
    )


def _enable_wal(cursor: Any) -> None:
    """Switch a database to WAL once; retry while another process does the same.

    Two connections converting a new database at the same moment can get
    SQLITE_BUSY without the busy handler running (SQLite's deadlock avoidance),
    so the conversion is retried here.
    """
    for attempt in itertools.count():
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt >= 200:
                raise
            time.sleep(0.01 + random.random() * 0.05)
