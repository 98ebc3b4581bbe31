"""The data sources mlcycle reads: CSV, Parquet, in-memory frames, bundled sets.

Each source turns its input into one :class:`pyarrow.Table` and says nothing
about meaning: roles, types and tasks are decided later by
:func:`~mlcycle.data.infer_schema`, identically for every source.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mlcycle.data._base import DataSource, safe_name
from mlcycle.errors import DataError
from mlcycle.plugins import DATA_SOURCES

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SKLEARN_DATASETS",
    "CsvSource",
    "FrameSource",
    "ParquetSource",
    "SklearnSource",
    "resolve_source",
]

#: The scikit-learn datasets that ship inside the package (no download).
SKLEARN_DATASETS: tuple[str, ...] = ("breast_cancer", "digits", "wine", "iris", "diabetes")

_CSV = (".csv",)
_PARQUET = (".parquet", ".pq")
_ACCEPTED = (
    f"expected sklearn:NAME (NAME one of {', '.join(SKLEARN_DATASETS)}), "
    "fashion-mnist:[N], a .csv, .parquet or .pq file, or a folder of such files"
)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):(.*)$", re.DOTALL)
_PANDAS_INDEX = re.compile(r"^__index_level_\d+__$")


def _duplicates(names: list[str]) -> list[str]:
    return sorted(name for name, count in Counter(names).items() if count > 1)


class _FileSource(DataSource):
    """A single file, or every file of one kind in a folder, sorted by name."""

    kind: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]]
    no_rows: ClassVar[str] = "file has no rows"

    def __init__(self, path: str | os.PathLike[str], *, label: str | None = None) -> None:
        self.path = Path(path)
        # Messages name the source as the user wrote it, not as resolved.
        self.label = label if label is not None else str(path)

    @classmethod
    def from_uri(cls, rest: str, *, base_dir: Path | None = None, given: str = "") -> DataSource:
        return _path_source(rest, base_dir, given or f"{cls.kind}:{rest}", cls.kind)

    @property
    def default_name(self) -> str:
        return safe_name(self.path.name if self.path.is_dir() else self.path.stem)

    def describe(self) -> str:
        return f"{self.kind}:{self.path.resolve()}"

    def _where(self, file: Path) -> str:
        if file == self.path:
            return f"data source {self.label!r}"
        return f"data source {self.label!r}, file {file.name!r}"

    def files(self) -> list[Path]:
        """The files this source reads, in the order their rows are concatenated."""
        if not self.path.exists():
            raise DataError(f"data source {self.label!r}: no such file or folder")
        if not self.path.is_dir():
            return [self.path]
        found = sorted(
            p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() in self.suffixes
        )
        if not found:
            raise DataError(
                f"data source {self.label!r}: folder has no {' or '.join(self.suffixes)} files"
            )
        return found

    def read(self) -> pa.Table:
        files = self.files()
        tables = []
        for file in files:
            if file.stat().st_size == 0:
                raise DataError(f"{self._where(file)}: file is empty (0 bytes)")
            table = self._read_file(file)
            if len(files) == 1 and table.num_rows == 0:
                raise DataError(f"{self._where(file)}: {self.no_rows}")
            if dup := _duplicates(table.column_names):
                raise DataError(f"{self._where(file)}: column names repeat: {', '.join(dup)}")
            tables.append(table)
        table = self._combine(tables, files)
        if table.num_rows == 0:
            raise DataError(f"data source {self.label!r}: every file has no rows")
        return table

    def _read_file(self, file: Path) -> pa.Table:
        raise NotImplementedError

    def _combine(self, tables: list[pa.Table], files: list[Path]) -> pa.Table:
        first = tables[0]
        aligned = [first]
        for table, file in zip(tables[1:], files[1:], strict=True):
            missing = [c for c in first.column_names if c not in table.column_names]
            extra = [c for c in table.column_names if c not in first.column_names]
            if missing or extra:
                raise DataError(
                    f"{self._where(file)}: columns differ from {files[0].name!r} "
                    f"(missing: {', '.join(missing) or '-'}; extra: {', '.join(extra) or '-'})"
                )
            table = table.select(first.column_names)
            for field, other in zip(first.schema, table.schema, strict=True):
                if field.type != other.type and not _compatible(field.type, other.type):
                    raise DataError(
                        f"{self._where(file)}: column {field.name!r} is {other.type} "
                        f"but {field.type} in {files[0].name!r}"
                    )
            aligned.append(table)
        if len(aligned) == 1:
            return first
        return pa.concat_tables(aligned, promote_options="permissive")


def _compatible(a: pa.DataType, b: pa.DataType) -> bool:
    try:
        pa.unify_schemas(
            [pa.schema([("c", a)]), pa.schema([("c", b)])], promote_options="permissive"
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return False
    return True


class CsvSource(_FileSource):
    """A CSV file with a header row, or a folder of them.

    Every column is read as text: :func:`~mlcycle.data.infer_schema` types it
    from all of its values across all files, with the spec's ``types`` taking
    precedence, and a bad value deep in a file is reported by row instead of
    failing the reader. Empty cells and the usual markers (``NA``, ``NaN``,
    ``null``, ``N/A``) are missing.

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = pathlib.Path(tmp) / "pets.csv"
        ...     _ = path.write_text("age,kind\\n3,cat\\n5,dog\\n")
        ...     CsvSource(path).read().column("age").to_pylist()
        ['3', '5']
    """

    kind = "csv"
    suffixes = _CSV
    no_rows = "file has a header but no rows"

    def _read_file(self, file: Path) -> pa.Table:
        where = self._where(file)
        try:
            with pacsv.open_csv(file) as reader:
                names = reader.schema.names
            if dup := _duplicates(names):
                raise DataError(f"{where}: column names repeat: {', '.join(dup)}")
            options = pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True
            )
            return pacsv.read_csv(file, convert_options=options)
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                raise DataError(f"{where}: file is empty (no header row)") from None
            raise DataError(f"{where}: not a readable CSV file: {exc}") from None


class ParquetSource(_FileSource):
    """A Parquet file, or a folder of them (a partitioned export).

    Files of a folder must hold the same columns; their types must agree up
    to widening (int32 with int64). pandas index columns are dropped.

    Example:
        >>> import tempfile, pathlib, pyarrow as pa, pyarrow.parquet as pq
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = pathlib.Path(tmp) / "pets.parquet"
        ...     pq.write_table(pa.table({"age": [3, 5]}), path)
        ...     ParquetSource(path).read().num_rows
        2
    """

    kind = "parquet"
    suffixes = _PARQUET

    def _read_file(self, file: Path) -> pa.Table:
        try:
            table = pq.ParquetFile(file).read()
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{self._where(file)}: not a readable Parquet file: {exc}") from None
        keep = [c for c in table.column_names if not _PANDAS_INDEX.match(c)]
        return table.select(keep)


class FrameSource(DataSource):
    """Rows already in memory: a pandas DataFrame or a pyarrow Table.

    The index of a DataFrame is not data and is dropped; column names become
    strings. Object columns mixing numbers and text become text, so that
    :func:`~mlcycle.data.infer_schema` can report the odd values by row.

    Example:
        >>> import pandas as pd
        >>> FrameSource(pd.DataFrame({"x": [1, 2]}), "tiny").read().num_rows
        2
    """

    def __init__(self, obj: pd.DataFrame | pa.Table, name: str = "frame") -> None:
        import pandas as pd

        if not isinstance(obj, pd.DataFrame | pa.Table):
            raise DataError(
                f"data source frame {name!r}: expected a pandas DataFrame or a pyarrow Table, "
                f"got {type(obj).__name__}"
            )
        self.obj = obj
        self.name = name

    @property
    def default_name(self) -> str:
        return self.name

    def describe(self) -> str:
        return f"frame:{self.name}"

    def read(self) -> pa.Table:
        table = self.obj if isinstance(self.obj, pa.Table) else _from_pandas(self.obj)
        if dup := _duplicates(table.column_names):
            raise DataError(f"data source frame {self.name!r}: column names repeat: {dup}")
        if table.num_columns == 0 or table.num_rows == 0:
            raise DataError(
                f"data source frame {self.name!r}: frame is empty "
                f"({table.num_rows} rows, {table.num_columns} columns)"
            )
        return table


def _from_pandas(df: pd.DataFrame) -> pa.Table:
    names = [str(c) for c in df.columns]
    arrays = []
    for i in range(df.shape[1]):
        series = df.iloc[:, i]
        try:
            arrays.append(pa.array(series, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            missing = series.isna().to_numpy()
            text = [None if m else str(v) for v, m in zip(series, missing, strict=True)]
            arrays.append(pa.array(text, pa.string()))
    return pa.table(arrays, names=names)


class SklearnSource(DataSource):
    """One of scikit-learn's bundled datasets, read offline.

    The target column is ``target``. Classification targets are class names
    where scikit-learn has them (breast_cancer: ``malignant``/``benign``);
    digits keeps its 0-9 labels and stores its 8x8 pixels as one ``image``
    column of 64 float32 values.

    Example:
        >>> source = SklearnSource("iris")
        >>> source.read().column_names[:2], source.describe()
        (['sepal_length_cm', 'sepal_width_cm'], 'sklearn:iris')
    """

    def __init__(self, name: str) -> None:
        if name not in SKLEARN_DATASETS:
            raise DataError(
                f"data source 'sklearn:{name}': unknown scikit-learn dataset {name!r}; "
                f"expected one of {', '.join(SKLEARN_DATASETS)}"
            )
        self.name = name

    @classmethod
    def from_uri(cls, rest: str, *, base_dir: Path | None = None, given: str = "") -> SklearnSource:
        return cls(rest)

    @property
    def default_name(self) -> str:
        return self.name

    def describe(self) -> str:
        return f"sklearn:{self.name}"

    @property
    def hints(self) -> dict[str, Any]:
        if self.name == "digits":
            return {"target": "target", "types": {"image": "image"}, "image_shape": [8, 8]}
        return {"target": "target"}

    def read(self) -> pa.Table:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, f"load_{self.name}")()
        data = np.asarray(bunch.data)
        columns: dict[str, pa.Array] = {}
        if self.name == "digits":
            pixels = pa.array(data.astype(np.float32).ravel())
            columns["image"] = pa.FixedSizeListArray.from_arrays(pixels, data.shape[1])
        else:
            for i, feature in enumerate(bunch.feature_names):
                columns[safe_name(str(feature))] = pa.array(data[:, i])
        target = np.asarray(bunch.target)
        names = getattr(bunch, "target_names", None)
        if names is not None and np.asarray(names).dtype.kind in "US":
            columns["target"] = pa.array(np.asarray(names).astype(str)[target].tolist())
        else:
            columns["target"] = pa.array(target)
        return pa.table(columns)


def resolve_source(obj: object, base_dir: Path | None = None) -> DataSource:
    """Turn whatever names a dataset into a :class:`DataSource`.

    Accepts a DataSource (returned as is), a pandas DataFrame or pyarrow
    Table, ``KIND:REST`` for a kind registered in
    :data:`mlcycle.plugins.DATA_SOURCES` (``sklearn:NAME``,
    ``fashion-mnist:N``, ``csv:PATH``, ``parquet:PATH``: what
    :meth:`DataSource.describe` records, so lineage can be read back), or a
    path (``str`` or ``PathLike``) to a ``.csv``/``.parquet``/``.pq`` file or
    a folder of them. Relative paths are resolved against
    ``base_dir`` (the project folder), not the working directory.

    Raises:
        DataError: the path does not exist, or the kind of source is unknown.

    Example:
        >>> resolve_source("sklearn:wine").describe()
        'sklearn:wine'
    """
    import pandas as pd

    if isinstance(obj, DataSource):
        return obj
    if isinstance(obj, pd.DataFrame | pa.Table):
        return FrameSource(obj)
    if isinstance(obj, str):
        match = _SCHEME.match(obj)
        if match:
            scheme, rest = match.group(1).lower(), match.group(2)
            if scheme in DATA_SOURCES:
                return DATA_SOURCES.get(scheme).from_uri(rest, base_dir=base_dir, given=obj)
            raise DataError(
                f"data source {obj!r}: unknown kind of source; {_ACCEPTED} "
                f"(registered kinds: {', '.join(DATA_SOURCES.names())})"
            )
        return _path_source(obj, base_dir, obj, None)
    if isinstance(obj, os.PathLike):
        return _path_source(os.fspath(obj), base_dir, os.fspath(obj), None)
    raise DataError(
        f"data source of type {type(obj).__name__}: unknown kind of source; {_ACCEPTED}"
    )


def _path_source(text: str, base_dir: Path | None, given: str, kind: str | None) -> DataSource:
    path = Path(text).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    suffix = path.suffix.lower()
    if kind is None and suffix and suffix not in _CSV + _PARQUET and not path.is_dir():
        raise DataError(f"data source {given!r}: unknown kind of source; {_ACCEPTED}")
    if not path.exists():
        raise DataError(f"data source {given!r}: no such file or folder")
    if kind == "csv" or (kind is None and suffix in _CSV and not path.is_dir()):
        return CsvSource(path, label=given)
    if kind == "parquet" or (kind is None and suffix in _PARQUET and not path.is_dir()):
        return ParquetSource(path, label=given)
    if not path.is_dir():
        raise DataError(f"data source {given!r}: unknown kind of source; {_ACCEPTED}")
    files = [p.suffix.lower() for p in path.iterdir() if p.is_file()]
    has_csv = any(s in _CSV for s in files)
    has_parquet = any(s in _PARQUET for s in files)
    if has_csv and has_parquet:
        raise DataError(
            f"data source {given!r}: folder holds both .csv and .parquet files; expected one kind"
        )
    if has_csv:
        return CsvSource(path, label=given)
    if has_parquet:
        return ParquetSource(path, label=given)
    raise DataError(f"data source {given!r}: folder has no .csv, .parquet or .pq files")
