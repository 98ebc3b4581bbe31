"""Where the loop stands, kept as events so a killed loop resumes where it was.

The record (:class:`~mlcycle.store.LoopState`) and its one reader and writer
live in :mod:`mlcycle.store`; this module adds the lease that keeps one loop
per model. Every transition appends one ``loop.<phase>`` event (entity ``loop``, the
model's name) whose details are the whole state; the newest such event *is*
the state. A tick that fails appends a ``loop.error`` event: the state it
failed in, with the error and how many ticks in a row have failed. An event is one committed row, so a process killed at any moment
leaves either the old state or the new one, never half of each, and every
decision stays in the audit log with its reasons. Each phase's work is
idempotent (content-addressed datasets, a training run found again by the id
the state records as soon as it starts, a version found again by its run), so redoing the step a kill interrupted is
safe.

One loop per model at a time: :func:`hold_lease` takes an exclusive lock on
``.mlcycle/loop-<model>.lock`` and, on PostgreSQL, an advisory lock, both
released if the process dies.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from mlcycle.errors import ConflictError
from mlcycle.store import LoopState, Phase, history, metadata_backend, read_state, write_state

if TYPE_CHECKING:
    from mlcycle.store import MetadataStore

__all__ = ["LoopState", "Phase", "history", "hold_lease", "read_state", "write_state"]


@contextmanager
def hold_lease(root: Path, model: str, store: MetadataStore | None = None) -> Iterator[None]:
    """Run the loop of ``model`` alone; raise if another process holds it.

    Always an exclusive file lock on ``.mlcycle/loop-<model>.lock`` (released
    by the kernel if the process dies); and the metadata backend's lease
    (:meth:`~mlcycle.store.MetadataBackend.lease`): on PostgreSQL a session
    advisory lock, so loops on other machines sharing the store are kept out
    too (released by the server when the connection goes).
    """
    path = root / ".mlcycle" / f"loop-{model}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConflictError(
                f"another mlcycle loop is running for {model!r} (lock {path})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        if store is None:
            yield
            return
        backend = metadata_backend(store.backend)
        with backend.lease(store.engine, f"mlcycle-loop:{model}") as held:
            if not held:
                raise ConflictError(
                    f"another mlcycle loop is running for {model!r} on the {backend.title} store"
                )
            yield
    finally:
        os.close(fd)
