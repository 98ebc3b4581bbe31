"""The lock around every append to a study's journal file: ``flock``, which dies with its holder.

Optuna's own journal locks (:class:`~optuna.storages.journal.JournalFileOpenLock`,
``JournalFileSymlinkLock``) are files that exist while held: a worker killed
inside an append (SIGKILL, the OOM killer) leaves the file behind, and every
other worker waits out a 30 s grace period before it takes the lock by force
(by then the dead one could as well be a live one that is slow). The kernel
drops an ``flock`` the moment its holder dies. The journal lives on this
machine's disk (workers elsewhere share a study through PostgreSQL), where
``flock`` is sound.

Imported only when a study opens its storage (it imports Optuna).
"""

from __future__ import annotations

import fcntl
import os
import threading

# Not in optuna.storages.journal's __all__, but the type JournalFileBackend's lock_obj is.
from optuna.storages.journal._file import BaseJournalFileLock

__all__ = ["FlockLock"]


class FlockLock(BaseJournalFileLock):
    """An exclusive ``flock`` on ``path`` (made if missing), one per thread that takes it."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._held = threading.local()

    def __getstate__(self) -> dict[str, str]:
        return {"path": self._path}  # a copy in another process holds nothing yet

    def __setstate__(self, state: dict[str, str]) -> None:
        self._path = state["path"]
        self._held = threading.local()

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._held.fd = fd
        return True

    def release(self) -> None:
        fd = getattr(self._held, "fd", None)
        if fd is None:
            raise RuntimeError(f"{self._path}: released without being held")
        self._held.fd = None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
