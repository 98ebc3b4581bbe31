"""Database engines and schema migrations.

The database itself is a metadata backend (:class:`~mlcycle.store._base.MetadataBackend`,
registered in :data:`mlcycle.plugins.METADATA_BACKENDS` under the SQLAlchemy
backend name of its URLs): SQLite (:mod:`mlcycle.store._sqlite`) and
PostgreSQL (:mod:`mlcycle.store._postgres`). It makes the tuned engine, the
one statement whose SQL differs between databases, and the migration lock;
everything above the engine (the store's records, its transaction rules) is
the same SQLAlchemy code for every backend. Read transactions run with the
execution option :data:`READ_ONLY`, which a backend may use (SQLite begins
them deferred, so a reader never takes the write lock).

Migrations are applied when a store is opened. The revision is read first,
without a lock; only when a migration is due do two processes opening the
same store serialise on a lock (SQLite's write lock, a PostgreSQL advisory
lock), so exactly one of them upgrades.
"""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from mlcycle.errors import StoreError
from mlcycle.plugins import METADATA_BACKENDS

if TYPE_CHECKING:
    from mlcycle.store._base import MetadataBackend

VERSION_TABLE = "mlcycle_alembic_version"
HEAD_REVISION = "0006"
READ_ONLY = "mlcycle_read_only"


def make_engine(url: str) -> Engine:
    """An engine for the URL's backend (:data:`mlcycle.plugins.METADATA_BACKENDS`), tuned for it.

    Raises:
        StoreError: not a database URL, or no metadata backend is registered for it.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"store url {url!r} is not a database URL") from None
    backend = parsed.get_backend_name()
    if backend not in METADATA_BACKENDS:
        raise StoreError(
            f"store url {url!r}: backend {backend!r} is not supported "
            f"({', '.join(METADATA_BACKENDS.names())})"
        )
    return metadata_backend(backend).create_engine(parsed)


def metadata_backend(name: str) -> MetadataBackend:
    """The metadata backend of SQLAlchemy backend (dialect) ``name``."""
    return METADATA_BACKENDS.get(name)()


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
            metadata_backend(connection.dialect.name).lock_migrations(connection)
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
