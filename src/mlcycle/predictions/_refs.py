"""Inputs logged by reference: a batch job's rows point at the file they were read from.

A batch job logs, per scored row, its outputs and a reference to its input
(``ref.input``: the id of the input's record, ``ref.row``: the row number in
the input) instead of a second copy of the input row: on a large file the
copy cost more than the model itself (``bench/RESULTS.md``, issue 22).

The input is recorded once per job under the log's ``inputs/`` folder: each
file's path, size, modification time, the sha256 of its first and last
64 KiB (a Parquet file's footer, which holds every row group's offsets and
statistics) and its row count. A reader (monitoring) checks all of those
before it reads a row through the reference; an input that is gone or has
changed since it was scored is said, and its rows are left out of the
window rather than read wrong. Served requests keep logging their inputs:
there is no file to point at.

Needs numpy and pyarrow only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from mlcycle._system import write_atomic

__all__ = [
    "REF_INPUT",
    "REF_ROW",
    "Resolved",
    "csv_columns",
    "csv_read_options",
    "edges_sha256",
    "input_column",
    "record_input",
    "resolve_references",
]

REF_INPUT = "ref.input"
REF_ROW = "ref.row"
_EDGE_BYTES = 64 << 10
_CSV_BLOCK_BYTES = 4 << 20
_FORMAT = 1

Feeds = dict[str, np.ndarray[Any, Any]]


def edges_sha256(path: Path, size: int) -> str:
    """sha256 of a file's first and last 64 KiB: catches rewrites that keep size and mtime."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        digest.update(f.read(_EDGE_BYTES))
        if size > _EDGE_BYTES:
            f.seek(max(_EDGE_BYTES, size - _EDGE_BYTES))
            digest.update(f.read(_EDGE_BYTES))
    return digest.hexdigest()


def csv_read_options(columns: Sequence[str]) -> tuple[pcsv.ReadOptions, pcsv.ConvertOptions]:
    """How a batch job reads a CSV input: ``columns`` as text, only the empty field missing."""
    return (
        pcsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
        pcsv.ConvertOptions(
            include_columns=list(columns),
            column_types=dict.fromkeys(columns, pa.string()),
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )


def input_column(arr: np.ndarray[Any, Any], n: int) -> pa.Array:
    """One input's values as a log column: images as fixed-size lists, text as strings."""
    if arr.ndim > 1:
        flat = pa.array(arr.reshape(n, -1).astype(np.float32).ravel())
        return pa.FixedSizeListArray.from_arrays(flat, int(np.prod(arr.shape[1:])))
    if arr.dtype == object:
        return pa.array(arr.tolist(), type=pa.string())
    return pa.array(arr)


def record_input(root: Path, kind: str, files: Sequence[Mapping[str, Any]]) -> str:
    """Record a job's input under ``root/inputs/`` (once per content); return its id.

    ``files`` are the input's files in reading order, each with ``file``,
    ``size``, ``mtime_ns``, ``edges_sha256`` and ``rows`` (``None`` where the
    format does not record it: a CSV file, always the only one).
    """
    entries = [
        {k: f[k] for k in ("file", "size", "mtime_ns", "edges_sha256", "rows")} for f in files
    ]
    record = {"format": _FORMAT, "kind": kind, "files": entries}
    text = json.dumps(record, sort_keys=True, separators=(",", ":"))
    input_id = hashlib.sha256(text.encode()).hexdigest()[:32]
    path = root / "inputs" / f"{input_id}.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda tmp: tmp.write_text(text))
    return input_id


@dataclass(frozen=True)
class Resolved:
    """A log table whose referenced rows got their inputs back.

    Attributes:
        table: the rows with their ``in.*`` columns, in the order read; rows
            whose input could not be read are not in it.
        notes: one line per input that could not be read, naming it and why.
        left_out: rows left out for that.
    """

    table: pa.Table
    notes: tuple[str, ...]
    left_out: int


def _unreadable(root: Path, input_id: str) -> tuple[dict[str, Any] | None, str | None]:
    """The input's record, or why its rows cannot be read now."""
    path = root / "inputs" / f"{input_id}.json"
    try:
        record: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, f"the record of input {input_id} is missing or unreadable ({path})"
    for f in record["files"]:
        file = Path(f["file"])
        try:
            stat = file.stat()
        except OSError:
            return None, f"{file} is gone"
        if stat.st_size != f["size"] or stat.st_mtime_ns != f["mtime_ns"]:
            return None, f"{file} changed since it was scored (size or modification time)"
        if edges_sha256(file, stat.st_size) != f["edges_sha256"]:
            return None, f"{file} changed since it was scored (its sha256 differs)"
    return record, None


def csv_columns(path: str | Path) -> list[str]:
    """The column names of a CSV file's header (raises ``pa.ArrowInvalid`` if unreadable)."""
    reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=_CSV_BLOCK_BYTES))
    try:
        return list(reader.schema.names)
    finally:
        reader.close()


def _column_names(record: Mapping[str, Any]) -> list[str]:
    first = record["files"][0]["file"]
    if record["kind"] == "csv":
        return csv_columns(first)
    return list(pq.read_schema(first).names)


def _read_rows(
    record: Mapping[str, Any], rows: np.ndarray[Any, Any], columns: list[str]
) -> pa.Table:
    """Input rows ``rows`` (sorted, unique, row numbers of the whole input) holding ``columns``."""
    if record["kind"] == "csv":
        read, convert = csv_read_options(columns)
        reader = pcsv.open_csv(
            record["files"][0]["file"], read_options=read, convert_options=convert
        )
        parts, start, last = [], 0, int(rows[-1])
        try:
            for batch in reader:
                stop = start + batch.num_rows
                lo, hi = np.searchsorted(rows, [start, stop])
                if hi > lo:
                    parts.append(pa.Table.from_batches([batch]).take(pa.array(rows[lo:hi] - start)))
                start = stop
                if start > last:
                    break
        finally:
            reader.close()
        return pa.concat_tables(parts).select(columns)
    parts, offset = [], 0
    for f in record["files"]:
        n = int(f["rows"])
        lo, hi = np.searchsorted(rows, [offset, offset + n])
        if hi > lo:
            parts.append(_parquet_rows(Path(f["file"]), rows[lo:hi] - offset, columns))
        offset += n
    return pa.concat_tables(parts, promote_options="permissive").select(columns)


def _parquet_rows(path: Path, rows: np.ndarray[Any, Any], columns: list[str]) -> pa.Table:
    """Rows ``rows`` of one Parquet file, reading only the row groups that hold them."""
    parquet = pq.ParquetFile(path)
    try:
        sizes = [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)]
        starts = np.concatenate([[0], np.cumsum(sizes)])
        group_of = np.searchsorted(starts, rows, side="right") - 1
        groups = np.unique(group_of)
        table = parquet.read_row_groups([int(g) for g in groups], columns=columns)
    finally:
        parquet.close()
    # position of each row in the concatenation of the groups read
    read_starts = np.concatenate([[0], np.cumsum([sizes[g] for g in groups])])[:-1]
    where = read_starts[np.searchsorted(groups, group_of)] + (rows - starts[group_of])
    return table.take(pa.array(where))


def resolve_references(
    table: pa.Table,
    root: Path,
    columns: list[str],
    convert: Callable[[pa.Table], Feeds],
    text: Sequence[str] = (),
) -> Resolved:
    """``table`` (log rows, oldest first) with the inputs of its referenced rows read back.

    Args:
        table: rows of the prediction log; those with a ``ref.input`` get their inputs.
        root: the log's folder.
        columns: the model's input columns, as the job read them.
        convert: the model's validation of a table of its input columns into graph
            inputs (as the job did before it scored them): the inputs are logged as fed.
        text: further columns the job carried beside the inputs (the signature's
            context), read as text, as the job logged them.
    """
    if REF_INPUT not in table.column_names:
        return Resolved(table, (), 0)
    refs = table.column(REF_INPUT)
    by_ref = np.asarray(refs.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if not by_ref.any():
        return Resolved(table, (), 0)
    position = np.arange(table.num_rows)
    keep = [table.filter(pa.array(~by_ref))] if not by_ref.all() else []
    kept_positions = [position[~by_ref]]
    notes: list[str] = []
    left_out = 0
    ids = pc.unique(refs.filter(pa.array(by_ref))).to_pylist()
    for input_id in ids:
        mine = np.flatnonzero(
            np.asarray(pc.equal(refs, input_id).fill_null(False).to_numpy(zero_copy_only=False))
        )
        record, why = _unreadable(root, str(input_id))
        if record is None:
            notes.append(f"inputs of {len(mine):,} batch-scored rows cannot be read: {why}")
            left_out += len(mine)
            continue
        numbers = table.column(REF_ROW).take(pa.array(mine)).to_numpy(zero_copy_only=False)
        unique, back = np.unique(numbers.astype(np.int64), return_inverse=True)
        has = _column_names(record)
        carried = [t for t in text if t in has and t not in columns]
        raw = _read_rows(record, unique, [*columns, *carried])
        feeds = convert(raw.select(columns))
        part = table.take(pa.array(mine))
        n = len(mine)
        for name in columns:
            values = np.asarray(feeds[name])[back]
            part = _set(part, "in." + name, input_column(values, n))
        for name in carried:
            values = raw.column(name).cast(pa.string()).take(pa.array(back))
            part = _set(part, "in." + name, values)
        keep.append(part)
        kept_positions.append(position[mine])
    if not keep:
        return Resolved(table.slice(0, 0), tuple(notes), left_out)
    merged = pa.concat_tables(keep, promote_options="permissive")
    order = np.argsort(np.concatenate(kept_positions), kind="stable")
    return Resolved(merged.take(pa.array(order)), tuple(notes), left_out)


def _set(table: pa.Table, name: str, column: Any) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, column)
    return table.append_column(name, column)
