"""Stream a CSV file, a Parquet file or a folder of Parquet files in fixed-size chunks.

Chunk ``k`` always holds input rows ``[k * chunk_rows, (k + 1) * chunk_rows)``
whatever the file's own row groups or CSV blocks are, so a resumed job cuts
the input exactly where the first run did. Only the columns asked for are
read, and never more than a chunk (plus one reader block, or one Parquet row
group of up to 64 MiB) is held at once.

CSV columns are read as text: a stray ``'abc'`` in a numeric column must
reject one row, not abort the reader as type inference would. Only the empty
field is read as missing, so that a category called ``NA`` stays itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from mlcycle.errors import DataError, NotFoundError
from mlcycle.predictions import csv_columns, csv_read_options, edges_sha256, record_input

__all__ = ["Source", "open_source"]

PARQUET_SUFFIXES = (".parquet", ".pq")
_WHOLE_GROUP_BYTES = 64 << 20  # a row group up to this size (columns read) is read whole


def _parquet_files(folder: Path) -> list[Path]:
    files = [
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in PARQUET_SUFFIXES
        and p.is_file()
        and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)
    ]
    if not files:
        raise DataError(f"input folder {str(folder)!r} holds no .parquet or .pq files")
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def _rechunk(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Regroup batches of any sizes into tables of exactly ``rows`` rows (the last may be short)."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        while batch.num_rows:
            take = min(rows - held, batch.num_rows)
            pending.append(batch.slice(0, take))
            held += take
            batch = batch.slice(take)
            if held == rows:
                yield pa.Table.from_batches(pending)
                pending, held = [], 0
    if held:
        yield pa.Table.from_batches(pending)


@dataclass(frozen=True)
class Source:
    """An input to score: what it is, its columns and (for Parquet) its row count.

    Attributes:
        path: the file or folder given.
        kind: ``"csv"`` or ``"parquet"``.
        files: the files read, in order (one, or a folder's Parquet files sorted by path).
        schema: the columns available (CSV: every column as text).
        total_rows: the row count where the format records it (Parquet), else ``None``.
    """

    path: Path
    kind: str
    files: tuple[Path, ...]
    schema: pa.Schema
    total_rows: int | None

    @property
    def column_names(self) -> list[str]:
        return list(self.schema.names)

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this input's content: each file's path, size, mtime and edge hash."""
        entries = []
        for f in self.files:
            stat = f.stat()
            entries.append(
                {
                    "file": str(f.resolve()),
                    "size": stat.st_size,
                    "mtime_ns": stat.st_mtime_ns,
                    "edges_sha256": edges_sha256(f, stat.st_size),
                }
            )
        return {"path": str(self.path.resolve()), "kind": self.kind, "files": entries}

    def record(self, root: Path, fingerprint: dict[str, Any]) -> str:
        """Record this input for the prediction log's references (:func:`record_input`); its id.

        ``fingerprint`` is the job's :meth:`fingerprint` of it (not hashed again).
        """
        files = [dict(entry) for entry in fingerprint["files"]]
        for entry, path in zip(files, self.files, strict=True):
            entry["rows"] = None if self.kind == "csv" else pq.read_metadata(path).num_rows
        return record_input(root, self.kind, files)

    def chunks(self, columns: list[str], chunk_rows: int, *, start: int = 0) -> Iterator[pa.Table]:
        """Tables of ``chunk_rows`` rows holding ``columns``, from chunk number ``start`` on."""
        skip = start * chunk_rows
        if self.kind == "csv":
            return _rechunk(self._csv_batches(columns, skip), chunk_rows)
        return _rechunk(self._parquet_batches(columns, chunk_rows, skip), chunk_rows)

    def _csv_batches(self, columns: list[str], skip: int) -> Iterator[pa.RecordBatch]:
        read, convert = csv_read_options(columns)
        reader = pcsv.open_csv(self.files[0], read_options=read, convert_options=convert)
        try:
            for batch in reader:
                if skip >= batch.num_rows:
                    skip -= batch.num_rows
                    continue
                yield batch.slice(skip) if skip else batch
                skip = 0
        except pa.ArrowInvalid as exc:
            raise DataError(f"input {str(self.path)!r} is not a readable CSV file: {exc}") from None
        finally:
            reader.close()

    def _parquet_batches(
        self, columns: list[str], chunk_rows: int, skip: int
    ) -> Iterator[pa.RecordBatch]:
        target = pa.schema([self.schema.field(c) for c in columns])
        for path in self.files:
            # pre_buffer=True would fetch every requested row group up front (here, for 1M
            # rows: +500 MB and 8x slower); a buffered stream keeps one page per column
            parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
            try:
                missing = [c for c in columns if c not in parquet.schema_arrow.names]
                if missing:
                    raise DataError(
                        f"input file {str(path)!r} lacks column {missing[0]!r} "
                        f"that {str(self.files[0])!r} has"
                    )
                rows = parquet.metadata.num_rows
                if skip >= rows:
                    skip -= rows
                    continue
                groups = list(range(parquet.num_row_groups))
                while groups and skip >= (n := parquet.metadata.row_group(groups[0]).num_rows):
                    skip -= n
                    groups.pop(0)
                for batch in _row_group_batches(parquet, groups, columns, chunk_rows):
                    if skip:
                        if skip >= batch.num_rows:
                            skip -= batch.num_rows
                            continue
                        batch, skip = batch.slice(skip), 0
                    yield _conform(batch, target, path)
            finally:
                parquet.close()


def _row_group_batches(
    parquet: pq.ParquetFile, groups: list[int], columns: list[str], chunk_rows: int
) -> Iterator[pa.RecordBatch]:
    """The row groups' batches: each read whole when small, else streamed.

    Reading a row group whole costs about a quarter less CPU than the
    record-batch stream (0.23 against 0.31 s per million rows of 30 float64
    columns, some 6% of a job with the log off; ``bench/RESULTS.md``, issue
    22); a large one is streamed so that memory stays bounded.
    """
    wanted = set(columns)
    for group in groups:
        meta = parquet.metadata.row_group(group)
        size = 0
        for i in range(meta.num_columns):  # leaf columns: a nested one's path is name.list...
            column = meta.column(i)
            parts = column.path_in_schema.split(".")
            if any(".".join(parts[:k]) in wanted for k in range(1, len(parts) + 1)):
                size += column.total_uncompressed_size
        if size <= _WHOLE_GROUP_BYTES:
            yield from parquet.read_row_group(group, columns=columns, use_threads=True).to_batches()
        else:
            yield from parquet.iter_batches(
                batch_size=chunk_rows, row_groups=[group], columns=columns, use_threads=True
            )


def _conform(batch: pa.RecordBatch, target: pa.Schema, path: Path) -> pa.RecordBatch:
    """A later file's batch in the first file's types, so that chunks can span files."""
    if batch.schema.equals(target):
        return batch
    try:
        return batch.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(
            f"input file {str(path)!r}: its columns cannot take the types of the first file ({exc})"
        ) from None


def _csv_columns(path: Path) -> list[str]:
    try:
        return csv_columns(path)
    except pa.ArrowInvalid as exc:
        raise DataError(f"input {str(path)!r} is not a readable CSV file: {exc}") from None


def open_source(path: str | os.PathLike[str]) -> Source:
    """The input at ``path``: a ``.csv`` file, a ``.parquet``/``.pq`` file or a folder of them.

    Raises:
        NotFoundError: nothing is at ``path``.
        DataError: it is none of the formats above, or is unreadable.
    """
    where = Path(path)
    if not where.exists():
        raise NotFoundError(f"input {str(where)!r} does not exist")
    if where.is_dir():
        files = _parquet_files(where)
        kind = "parquet"
    elif where.suffix.lower() in PARQUET_SUFFIXES:
        files, kind = [where], "parquet"
    elif where.suffix.lower() == ".csv":
        names = _csv_columns(where)
        schema = pa.schema([(name, pa.string()) for name in names])
        return Source(where, "csv", (where,), schema, None)
    else:
        raise DataError(
            f"input {str(where)!r}: expected a .csv file, a .parquet or .pq file, "
            "or a folder of Parquet files"
        )
    try:
        metas = [pq.read_metadata(f) for f in files]
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"input {str(where)!r} is not a readable Parquet file: {exc}") from None
    schema = metas[0].schema.to_arrow_schema()
    return Source(where, kind, tuple(files), schema, sum(m.num_rows for m in metas))
