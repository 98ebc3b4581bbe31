"""A disk that can be full: Parquet writes fail with ENOSPC while ``full`` is set."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow.parquet as pq
import pytest


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


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[FullDisk]:
    disk = FullDisk(pq.write_table)
    monkeypatch.setattr(pq, "write_table", disk.write_table)
    yield disk
    disk.full.clear()
