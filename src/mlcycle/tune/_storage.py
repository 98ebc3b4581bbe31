"""Where a study's trials live, so that several workers share it.

``journal`` (the default for a project on SQLite): Optuna's append-only
journal file under ``.mlcycle/studies/``; workers on one machine append to it
under a kernel file lock (released when its holder dies, unlike Optuna's lock
files), and a killed worker leaves at most its own last record unfinished. ``postgres`` (the default when the project's store is
PostgreSQL): Optuna's own tables in a schema of their own beside the
store's (``<schema>_optuna``), so workers on several machines share one study.
``sqlite``: Optuna's tables in a SQLite file, kept for comparison: it locks
under parallel workers (``bench/tune_parallel.py`` measures by how much).
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from mlcycle.errors import SpecError

if TYPE_CHECKING:
    import optuna

    from mlcycle.project import Project

__all__ = ["StudyStorage", "storage_for"]

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,120}$")


@dataclass(frozen=True)
class StudyStorage:
    """Plain data that names a study's storage; any process can open it again."""

    kind: str  # journal | sqlite | postgres
    location: str  # a file path, or a database URL
    lock_path: str  # the file lock workers on this machine take to ask for a trial

    @property
    def journal_lock_path(self) -> str | None:
        """The file every append to a journal study ``flock``s (None for a database)."""
        return self.location + ".flock" if self.kind == "journal" else None

    def open(self) -> optuna.storages.BaseStorage:
        import optuna
        from optuna.storages.journal import JournalFileBackend

        from mlcycle.tune._journal_lock import FlockLock

        if self.kind == "journal":
            backend = JournalFileBackend(
                self.location, lock_obj=FlockLock(str(self.journal_lock_path))
            )
            return optuna.storages.JournalStorage(backend)
        if self.kind == "sqlite":
            return optuna.storages.RDBStorage(
                f"sqlite:///{self.location}", engine_kwargs={"connect_args": {"timeout": 60}}
            )
        return optuna.storages.RDBStorage(self.location, engine_kwargs={"pool_pre_ping": True})

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Held while a worker counts the trials and asks for one (no study overshoots).

        A file lock on this machine for a journal or SQLite study; for a study in
        PostgreSQL, which workers on other machines share, the server's advisory
        lock on the study's name.
        """
        if self.kind == "postgres":
            with _advisory_lock(self.location, f"mlcycle-study:{Path(self.lock_path).stem}"):
                yield
            return
        with open(self.lock_path, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


@contextmanager
def _advisory_lock(url: str, key: str) -> Iterator[None]:
    """PostgreSQL's session advisory lock on ``key``, held on a connection of its own."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            # No pool: the connection (and the lock, if this process dies) ends with the block.
            engine = _ENGINES[url] = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(hashtext(:k))"), {"k": key})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": key})
            connection.commit()


def check_name(name: str) -> str:
    """A study name usable as a file name and a database key.

    Raises:
        SpecError: it has other characters than letters, digits, ``_.-``.
    """
    if not _NAME.match(name) or name.startswith("."):
        raise SpecError(
            f"study name {name!r}: use 1-120 letters, digits, '_', '.' or '-' (not first '.')"
        )
    return name


def storage_for(project: Project, name: str, kind: str = "auto") -> StudyStorage:
    """The storage of study ``name`` in ``project`` (``kind`` is ``tune.storage``)."""
    folder = project.root / ".mlcycle" / "studies"
    folder.mkdir(parents=True, exist_ok=True)
    lock = str(folder / f"{name}.lock")
    url = project.store.url
    if kind == "auto":
        kind = "postgres" if url.startswith("postgresql") else "journal"
    if kind == "journal":
        return StudyStorage("journal", str(folder / f"{name}.journal"), lock)
    if kind == "sqlite":
        return StudyStorage("sqlite", str(folder / f"{name}.db"), lock)
    return StudyStorage("postgres", _optuna_schema_url(url), lock)


def _optuna_schema_url(url: str) -> str:
    """The store's PostgreSQL URL with a search path of Optuna's own (made if missing).

    Optuna's tables (and its ``alembic_version``) would clash with the store's,
    so they live in ``<store schema>_optuna`` (``optuna`` beside ``public``).
    """
    parsed = urlsplit(url)
    options = parse_qs(parsed.query).get("options", [""])[0]
    found = re.search(r"search_path\s*=\s*([A-Za-z0-9_]+)", unquote(options))
    base = found.group(1) if found and found.group(1) != "public" else ""
    schema = f"{base}_optuna" if base else "optuna"
    sa_url = make_url(url)
    if sa_url.get_driver_name() in ("psycopg2", ""):
        sa_url = sa_url.set(drivername="postgresql+psycopg")
    query: dict[str, Any] = dict(sa_url.query)
    query["options"] = f"-csearch_path={schema}"
    sa_url = sa_url.set(query=query)
    engine = create_engine(sa_url.set(query={k: v for k, v in query.items() if k != "options"}))
    try:
        with engine.begin() as connection:
            # IF NOT EXISTS is no lock: two workers starting together both create, and one
            # fails on the catalogue's unique index. The second waits here, then sees it.
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": schema})
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        engine.dispose()
    return sa_url.render_as_string(hide_password=False)


def pid_alive(pid: int, started: str | None) -> bool:
    """Whether process ``pid`` still runs and is the one that started at ``started``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if _process_state(pid) in ("Z", "X"):
        return False  # dead, and its parent has not reaped it yet (a worker of tune's driver)
    return started is None or started == process_started(pid)


def _process_state(pid: int) -> str | None:
    """The state letter of process ``pid`` (Linux: R, S, D, Z for a zombie, ...)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def process_started(pid: int | None = None) -> str | None:
    """When a process started, in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid or os.getpid()}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]
