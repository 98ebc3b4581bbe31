"""The plugin boundary for data: where rows come from.

A :class:`DataSource` only reads. Everything after reading (schema inference,
canonical types, fingerprints, profiles, splits) is a plain function of the
table it returns, so a new kind of source is one new class with one method.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["DataSource", "safe_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(text: str) -> str:
    """``text`` made into a name that fits ``^[A-Za-z0-9_.-]+$``, kept readable.

    Names that already fit are returned unchanged; otherwise each run of other
    characters becomes one underscore (``"sepal length (cm)"`` →
    ``"sepal_length_cm"``). Used for dataset names and sklearn feature names,
    which end up in file paths, URLs and ONNX input names.

    Example:
        >>> safe_name("od280/od315_of_diluted_wines")
        'od280_od315_of_diluted_wines'
    """
    if _UNSAFE.search(text) is None and text:
        return text
    cleaned = _UNSAFE.sub("_", text).strip("_")
    return cleaned or "data"


class DataSource(ABC):
    """Where a dataset's rows come from.

    Subclasses read one kind of input (CSV, Parquet, an in-memory frame, a
    bundled scikit-learn set) into a :class:`pyarrow.Table`. They raise
    :class:`~mlcycle.errors.DataError` for anything wrong with the input, so a
    user never sees a bare library traceback.

    Example:
        >>> import pyarrow as pa
        >>> class Ones(DataSource):
        ...     def read(self) -> pa.Table:
        ...         return pa.table({"x": [1, 1]})
        ...     @property
        ...     def default_name(self) -> str:
        ...         return "ones"
        ...     def describe(self) -> str:
        ...         return "ones:"
        >>> Ones().read().num_rows
        2
    """

    @abstractmethod
    def read(self) -> pa.Table:
        """Read every row.

        Raises:
            DataError: the input is missing, empty or unreadable.
        """

    @property
    @abstractmethod
    def default_name(self) -> str:
        """The dataset name used when the caller gives none (``breast_cancer``, a file stem)."""

    @abstractmethod
    def describe(self) -> str:
        """Where the rows come from, recorded as lineage (``sklearn:iris``, ``csv:/abs/path``)."""

    @property
    def hints(self) -> dict[str, Any]:
        """What the source knows that inference cannot see.

        Keys, all optional: ``target`` (column name), ``types`` (column →
        :data:`~mlcycle.spec.ColumnType`), ``task``, ``image_shape`` (list of
        ints for image columns). The project spec overrides every hint.
        """
        return {}

    @classmethod
    def from_uri(cls, rest: str, *, base_dir: Path | None = None, given: str = "") -> DataSource:
        """The source that ``KIND:rest`` names, ``KIND`` being this class's registered name.

        A kind registered in :data:`mlcycle.plugins.DATA_SOURCES` is reached by
        that prefix from the spec (``data.datasets.<name>.source``), the CLI and
        :func:`~mlcycle.data.resolve_source`. ``base_dir`` is the project
        folder (for relative paths); ``given`` is the text as the user wrote
        it, for messages. The default takes no argument after the prefix.

        Raises:
            DataError: ``rest`` does not name such a source.
        """
        if rest:
            raise DataError(f"data source {given!r}: {cls.__name__} takes nothing after the colon")
        return cls()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"
