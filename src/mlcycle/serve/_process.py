"""Settings of a process that only serves (``mlcycle serve``), applied before the app starts."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["pyarrow_without_pandas"]


class _Hidden(importlib.abc.MetaPathFinder):
    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == self.name:
            raise ModuleNotFoundError(f"{fullname} is hidden while pyarrow starts", name=fullname)
        return None


def pyarrow_without_pandas() -> None:
    """Let pyarrow settle, once, that pandas is absent, unless the process imported it already.

    pyarrow imports pandas at its first conversion when pandas is installed,
    only to ask whether each input is a pandas object: +50 MiB and half a
    second per server start, for a question whose answer in a server is
    always no (the prediction log hands it numpy arrays and lists). After
    this call those checks answer "not pandas" without importing it; an
    explicit ``to_pandas()`` or ``from_pandas()`` still imports pandas then.
    For a process that only serves: embedded in a notebook, the app leaves
    pyarrow as it is.
    """
    if "pandas" in sys.modules:
        return
    hidden = _Hidden("pandas")
    sys.meta_path.insert(0, hidden)
    try:
        import pyarrow as pa

        pa.array([], pa.int8())  # pyarrow's one attempt to import pandas
    finally:
        sys.meta_path.remove(hidden)
