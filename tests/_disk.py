"""Full disks for the tests of every writer: an injected one and a real tiny one.

The fixtures ``full_disk`` (ENOSPC from ``pyarrow.parquet.write_table`` while
``full`` is set) and ``tiny_fs`` (a real 64 KiB tmpfs) are in ``tests/conftest.py``.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import Any


class FullDisk:
    """Makes ``pyarrow.parquet.write_table`` fail as a full filesystem does.

    While ``full`` is set, each write puts a few bytes where the file was to
    go (a full disk leaves a partial file) and raises ``OSError(ENOSPC)``.
    ``failures`` counts the failed writes; :meth:`wait_failures` waits for a
    number of them (progress, not time). ``clear_after`` empties the disk by
    itself after that many failures, for code that retries with nobody to call.
    """

    def __init__(self, write: Any) -> None:
        self._write = write
        self.full = threading.Event()
        self.failures = 0
        self.clear_after: int | None = None
        self._changed = threading.Condition()

    def write_table(self, table: Any, where: Any, *args: Any, **kwargs: Any) -> None:
        if self.full.is_set():
            if isinstance(where, str | os.PathLike):
                with open(where, "wb") as partial:
                    partial.write(b"PAR1")
            else:
                where.write(b"PAR1")
            with self._changed:
                self.failures += 1
                if self.clear_after is not None and self.failures >= self.clear_after:
                    self.full.clear()
                self._changed.notify_all()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(where))
        self._write(table, where, *args, **kwargs)

    def wait_failures(self, count: int, timeout: float = 30.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self.failures >= count, timeout):
                raise AssertionError(f"{self.failures} failed writes, waited for {count}")


def fill(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` to the last byte; returns the file to delete for room."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        try:
            while True:
                f.write(b"\0")
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def open_files_under(folder: Path) -> list[str]:
    """Files this process holds open under ``folder`` (Linux's /proc)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found
