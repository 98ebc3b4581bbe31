"""Database engines and schema migrations.

SQLite is tuned for several processes on one laptop: WAL journal, a busy
timeout, foreign keys on, and write transactions that take the write lock at
``BEGIN`` (``BEGIN IMMEDIATE``) so that two writers queue instead of failing
with "database is locked" half-way through. Read transactions (the store's
``_read()`` sessions, the schema check on open) begin deferred and never take
the write lock: with WAL they read the last committed state while another
process writes. A writer that waits more than a second for the lock says so
once, in the ``mlcycle.store`` log. PostgreSQL needs none of this.

Migrations are applied when a store is opened. The revision is read first,
without a lock; only when a migration is due do two processes opening the
same store serialise on a lock (SQLite's write lock, a PostgreSQL advisory
lock), so exactly one of them upgrades.
"""

from __future__ import annotations

import itertools
import logging
import random
import sqlite3
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from mlcycle.errors import StoreError

VERSION_TABLE = "mlcycle_alembic_version"
HEAD_REVISION = "0004"
_PG_MIGRATION_LOCK = 0x6D6C6379  # "mlcy"
READ_ONLY = "mlcycle_read_only"
BUSY_TIMEOUT_S = 60.0  # how long a SQLite writer waits for the write lock in all
SAY_WAITING_AFTER_S = 1.0  # ... and after how long it says that it is waiting

log = logging.getLogger("mlcycle.store")


def make_engine(url: str) -> Engine:
    """An engine for a SQLite or PostgreSQL URL, tuned for concurrent use."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"store url {url!r} is not a database URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_S})
        _tune_sqlite(engine, parsed.database or ":memory:")
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() in ("psycopg2", ""):
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            return create_engine(parsed, pool_pre_ping=True)
        except ModuleNotFoundError:
            raise StoreError("PostgreSQL needs psycopg: pip install 'mlcycle[postgres]'") from None
    raise StoreError(
        f"store url {url!r}: backend {backend!r} is not supported (sqlite, postgresql)"
    )


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


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("mlcycle.store") / "migrations"))
    config.attributes["connection"] = connection
    return config


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at, ``None`` for an empty database (a read)."""
    with engine.execution_options(**{READ_ONLY: True}).connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def head_revision() -> str:
    """The newest revision this version of mlcycle ships."""
    config = Config()
    config.set_main_option("script_location", str(files("mlcycle.store") / "migrations"))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (default: the newest), under a lock.

    Raises:
        StoreError: the database cannot be reached, or is newer than this mlcycle.
    """
    try:
        if revision == "head" and current_revision(engine) == HEAD_REVISION:
            return
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                )
            context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
            current = context.get_current_revision()
            if current == revision or (revision == "head" and current == HEAD_REVISION):
                return
            known = {HEAD_REVISION, *_all_revisions()}
            if current is not None and current not in known:
                raise StoreError(
                    f"the store is at schema revision {current!r}, newer than this "
                    f"mlcycle knows ({HEAD_REVISION!r}): upgrade mlcycle"
                )
            command.upgrade(_alembic_config(connection), revision)
    except OperationalError as exc:
        raise StoreError(f"cannot open the metadata store {engine.url!r}: {exc.orig}") from None


def _all_revisions() -> list[str]:
    config = Config()
    config.set_main_option("script_location", str(files("mlcycle.store") / "migrations"))
    return [script.revision for script in ScriptDirectory.from_config(config).walk_revisions()]
