"""What mlcycle asks of the operating system: the cores it may use, files written whole,
connections and files released at the end of a ``with`` block.

One place for each, so that every stage counts cores the same way (the
process's affinity mask, which ``taskset`` and a container's cpuset narrow,
not the machine's count), every file a reader may open while it is being
written appears at once, complete, or not at all, and everything that holds a
resource closes it the same way (:class:`Closing`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["Closing", "cores", "sync_folder", "write_atomic"]


class Closing:
    """A base for what holds a resource: ``with`` it, and :meth:`close` runs at the end.

    ``contextlib.closing`` as a base class, so the holder itself is the context
    manager (``with Project.open() as project:``).
    """

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def cores() -> int:
    """The CPU cores this process may run on (at least 1).

    Example:
        >>> cores() >= 1
        True
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)  # pragma: no cover - macOS, Windows


def sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(
    path: Path,
    write: Callable[[Path], object],
    *,
    sync: bool = False,
    folders: Iterable[Path] = (),
) -> None:
    """Have ``write`` fill a hidden temporary file beside ``path``, then rename it to ``path``.

    A reader sees the old file or the new one, never half of it; a failed
    write (a full disk) leaves no temporary file behind. With ``sync`` the
    file's bytes and the rename reach the disk before this returns (for what
    a caller acknowledges); ``folders`` are synced too (a folder just made,
    whose own entry is new in its parent).

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "note.txt"
        >>> write_atomic(target, lambda tmp: tmp.write_text("done"))
        >>> target.read_text(), [p.name for p in target.parent.iterdir()]
        ('done', ['note.txt'])
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        write(tmp)
        if sync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync:
        for folder in (path.parent, *folders):
            sync_folder(folder)
