"""The prediction log: what each model version was asked and what it answered.

Served requests and batch-scored rows are appended here off the hot path and
written as Parquet segments by a background thread: on an interval, when a
segment is full, and on close. A crash loses at most the last interval; the
buffer is bounded (the oldest rows are dropped, and counted, when it is full)
so a slow disk never grows memory without limit. Ground-truth labels that
arrive later are appended to ``feedback/`` segments keyed by request id.
Monitoring reads both.

Layout under the log's root::

    predictions/MODEL/vVERSION/date=YYYY-MM-DD/HHMMSSffffff-<seq>-<random>.parquet
    feedback/date=YYYY-MM-DD/HHMMSSffffff-<seq>-<random>.parquet

Each segment is written to a temporary name and renamed, so a reader never
sees half a file. Needs numpy and pyarrow only.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["LoggedBatch", "PredictionLog"]

INPUT_PREFIX = "in."


@dataclass
class LoggedBatch:
    """One call's rows: a request (or a chunk of a batch job) and its answers.

    ``ood_score`` and ``ood`` (logged as columns of those names) are the
    out-of-distribution detector's score and flag per row, when the version
    has a detector.
    """

    model: str
    version: int
    source: str
    request_ids: Sequence[str] | pa.Array  # an Arrow string array is taken as it is
    inputs: Mapping[str, np.ndarray[Any, Any]]
    latency_ms: float
    labels: np.ndarray[Any, Any] | None = None
    probabilities: np.ndarray[Any, Any] | None = None
    values: np.ndarray[Any, Any] | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ood_score: np.ndarray[Any, Any] | None = None  # the OOD detector's score per row
    ood: np.ndarray[Any, Any] | None = None  # and its flag

    def __len__(self) -> int:
        return len(self.request_ids)

    def to_table(self) -> pa.Table:
        n = len(self)

        def constant(value: Any, kind: pa.DataType) -> pa.Array:
            return pa.repeat(pa.scalar(value, kind), n)

        columns: dict[str, pa.Array] = {
            "time": constant(self.at, pa.timestamp("us", tz="UTC")),
            "request_id": _ids(self.request_ids),
            "model": constant(self.model, pa.string()),
            "version": constant(self.version, pa.int32()),
            "source": constant(self.source, pa.string()),
            "latency_ms": pa.array(np.full(n, self.latency_ms, dtype=np.float32)),
        }
        if self.labels is not None:
            columns["label"] = _labels(self.labels)
        if self.probabilities is not None:
            p = np.asarray(self.probabilities, dtype=np.float32)
            columns["probabilities"] = pa.FixedSizeListArray.from_arrays(
                pa.array(p.ravel()), p.shape[1]
            )
        if self.values is not None:
            columns["value"] = pa.array(np.asarray(self.values, dtype=np.float64))
        if self.ood_score is not None and self.ood is not None:
            columns["ood_score"] = pa.array(np.asarray(self.ood_score, dtype=np.float32))
            columns["ood"] = pa.array(np.asarray(self.ood, dtype=bool))
        for name, values in self.inputs.items():
            columns[INPUT_PREFIX + name] = _input_column(np.asarray(values), n)
        return pa.table(columns)


def _ids(ids: Sequence[str] | pa.Array) -> pa.Array:
    return ids if isinstance(ids, pa.Array) else pa.array(list(ids), type=pa.string())


def _labels(labels: Any) -> pa.Array:
    """Labels as strings: ONNX Runtime's are already ``str`` objects, taken without a copy to lists."""
    arr = np.asarray(labels)
    if arr.dtype == object:
        try:
            return pa.array(arr, type=pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all str: the general way below
            pass
    return pa.array(arr.astype(str).tolist(), pa.string())


def _input_column(arr: np.ndarray[Any, Any], n: int) -> pa.Array:
    """One input's values as a log column: images as fixed-size lists, text as strings."""
    if arr.ndim > 1:
        flat = pa.array(arr.reshape(n, -1).astype(np.float32).ravel())
        return pa.FixedSizeListArray.from_arrays(flat, int(np.prod(arr.shape[1:])))
    if arr.dtype == object:
        return pa.array(arr.tolist(), type=pa.string())
    return pa.array(arr)


class _Buffered(NamedTuple):
    """A batch as the log holds it until written.

    Numeric single-value inputs (the common case for tables) are packed into
    one ``float32 [inputs, rows]`` array at append time, so a flush
    concatenates one array per request instead of one per input, and the
    buffer holds no per-request dicts for the garbage collector to scan.
    """

    model: str
    version: int
    source: str
    request_ids: tuple[str, ...] | pa.Array
    names: tuple[str, ...]
    packed: np.ndarray[Any, Any] | None
    inputs: Mapping[str, np.ndarray[Any, Any]] | None  # when not packed
    latency_ms: float
    labels: np.ndarray[Any, Any] | None
    probabilities: np.ndarray[Any, Any] | None
    values: np.ndarray[Any, Any] | None
    at: datetime
    ood_score: np.ndarray[Any, Any] | None
    ood: np.ndarray[Any, Any] | None

    @classmethod
    def of(cls, b: LoggedBatch) -> _Buffered:
        n, names = len(b), tuple(b.inputs)
        packed = getattr(b.inputs, "block", None)  # already packed by to_feeds
        if packed is None or packed.shape != (len(names), n) or packed.dtype != np.float32:
            packed = None
            arrays = list(b.inputs.values())
            try:
                flat = np.concatenate(arrays) if arrays else None
            except (ValueError, TypeError):  # images, or mixed dimensions
                flat = None
            if flat is not None and flat.dtype == np.float32 and flat.size == n * len(names):
                packed = flat.reshape(len(names), n)
        return cls(
            b.model,
            b.version,
            b.source,
            b.request_ids if isinstance(b.request_ids, pa.Array) else tuple(b.request_ids),
            names,
            packed,
            None if packed is not None else b.inputs,
            b.latency_ms,
            b.labels,
            b.probabilities,
            b.values,
            b.at,
            b.ood_score if b.ood is not None else None,
            b.ood if b.ood_score is not None else None,
        )

    def rows(self) -> int:
        return len(self.request_ids)

    def input(self, i: int) -> np.ndarray[Any, Any]:
        if self.packed is not None:
            row: np.ndarray[Any, Any] = self.packed[i]
            return row
        assert self.inputs is not None
        return np.asarray(self.inputs[self.names[i]])

    def batch(self) -> LoggedBatch:
        inputs = {name: self.input(i) for i, name in enumerate(self.names)}
        return LoggedBatch(
            self.model,
            self.version,
            self.source,
            self.request_ids,
            inputs,
            self.latency_ms,
            self.labels,
            self.probabilities,
            self.values,
            self.at,
            self.ood_score,
            self.ood,
        )


def _layout(b: _Buffered) -> tuple[Any, ...]:
    return (b.names, b.labels is None, b.probabilities is None, b.values is None, b.ood is None)


def _to_table(batches: list[_Buffered]) -> pa.Table:
    """One table for many batches: each column concatenated once, not a table per batch."""
    layout = _layout(batches[0])
    if len(batches) > 1 and all(_layout(b) == layout for b in batches):
        try:
            return _columnar(batches)
        except ValueError:  # inputs whose shapes differ between batches
            pass
    return pa.concat_tables([b.batch().to_table() for b in batches], promote_options="permissive")


def _columnar(batches: list[_Buffered]) -> pa.Table:
    lengths = np.fromiter((b.rows() for b in batches), dtype=np.int64, count=len(batches))
    n = int(lengths.sum())

    def repeat(values: list[Any]) -> list[Any]:
        return np.repeat(np.array(values, dtype=object), lengths).tolist()

    stamps = np.fromiter(
        (int(b.at.timestamp() * 1_000_000) for b in batches), dtype=np.int64, count=len(batches)
    )
    columns: dict[str, pa.Array] = {
        "time": pa.array(np.repeat(stamps, lengths), type=pa.timestamp("us", tz="UTC")),
        "request_id": (
            pa.array([r for b in batches for r in b.request_ids], type=pa.string())
            if not any(isinstance(b.request_ids, pa.Array) for b in batches)
            else pa.concat_arrays([_ids(b.request_ids) for b in batches])
        ),
        "model": pa.array(repeat([b.model for b in batches]), type=pa.string()),
        "version": pa.array(np.repeat(np.array([b.version for b in batches], np.int32), lengths)),
        "source": pa.array(repeat([b.source for b in batches]), type=pa.string()),
        "latency_ms": pa.array(
            np.repeat(np.array([b.latency_ms for b in batches], dtype=np.float32), lengths)
        ),
    }
    first = batches[0]
    if first.labels is not None:
        columns["label"] = _labels(np.concatenate([np.asarray(b.labels) for b in batches]))
    if first.probabilities is not None:
        p = np.concatenate([np.asarray(b.probabilities, dtype=np.float32) for b in batches])
        columns["probabilities"] = pa.FixedSizeListArray.from_arrays(
            pa.array(p.ravel()), p.shape[1]
        )
    if first.values is not None:
        columns["value"] = pa.array(
            np.concatenate([np.asarray(b.values, dtype=np.float64) for b in batches])
        )
    if first.ood is not None:
        scores = [np.asarray(b.ood_score, dtype=np.float32) for b in batches]
        columns["ood_score"] = pa.array(np.concatenate(scores))
        columns["ood"] = pa.array(np.concatenate([np.asarray(b.ood, dtype=bool) for b in batches]))
    matrix = (
        np.concatenate([b.packed for b in batches], axis=1)
        if all(b.packed is not None for b in batches)
        else None
    )
    for i, name in enumerate(first.names):
        if matrix is not None:
            columns[INPUT_PREFIX + name] = pa.array(matrix[i])
            continue
        arr = np.concatenate([b.input(i) for b in batches])
        columns[INPUT_PREFIX + name] = _input_column(arr, n)
    return pa.table(columns)


_SEQUENCE = itertools.count()


def _write_atomic(table: pa.Table, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    # Names sort in write order (microseconds, then this process's sequence number),
    # so a window reads its newest segments first; the random part keeps processes apart.
    final = folder / f"{now:%H%M%S%f}-{next(_SEQUENCE):08d}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = folder / f".{final.name}.part"
    try:
        # Dictionary-encode only text (ids, labels, categories): floats do not repeat.
        text = [f.name for f in table.schema if pa.types.is_string(f.type)]
        pq.write_table(
            table, tmp, compression="zstd", compression_level=1, use_dictionary=text or False
        )
        tmp.replace(final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


class PredictionLog:
    """Buffered, bounded, background writer of prediction and feedback segments.

    Args:
        root: the log's folder (a project uses ``.mlcycle/log``).
        flush_interval_s: write what is buffered at least this often.
        segment_rows: write as soon as this many rows are buffered.
        convert_interval_s: how often the writer turns buffered rows into Arrow
            tables between writes (small pieces keep a server's latency even).
        max_buffer_rows: beyond this, the oldest buffered rows are dropped (counted).

    Example:
        >>> import tempfile, numpy as np
        >>> log = PredictionLog(tempfile.mkdtemp())
        >>> log.append(LoggedBatch("m", 1, "serve", ["r1"], {"x": np.array([1.0])}, 0.4,
        ...                        values=np.array([2.5])))
        >>> log.close()
        >>> log.read().column("value").to_pylist()
        [2.5]
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        flush_interval_s: float = 1.0,
        segment_rows: int = 50_000,
        max_buffer_rows: int = 200_000,
        convert_interval_s: float = 0.05,
    ) -> None:
        self.root = Path(root)
        self.flush_interval_s = flush_interval_s
        self.convert_interval_s = convert_interval_s
        self.segment_rows = segment_rows
        self.max_buffer_rows = max_buffer_rows
        self.dropped_rows = 0
        self.written_rows = 0
        self._batches: deque[_Buffered] = deque()
        self._feedback: list[tuple[str, str, datetime]] = []
        self._buffered = 0
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # the converted tables and the files
        self._tables: dict[tuple[str, int, str], list[pa.Table]] = {}
        self._converted = 0
        self._last_write = time.monotonic()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name="mlcycle-prediction-log", daemon=True
        )
        self._thread.start()

    def append(self, batch: LoggedBatch) -> None:
        """Queue a batch; never blocks on disk."""
        buffered = _Buffered.of(batch)
        with self._lock:
            self._batches.append(buffered)
            self._buffered += len(batch)
            while self._buffered > self.max_buffer_rows and len(self._batches) > 1:
                old = self._batches.popleft()
                self._buffered -= old.rows()
                self.dropped_rows += old.rows()
            full = self._buffered >= self.segment_rows
        if full:
            self._wake.set()

    def feedback(self, labels: Iterable[tuple[str, Any]]) -> int:
        """Queue ground-truth labels for request ids; returns how many."""
        now = datetime.now(UTC)
        rows = [(str(rid), str(label), now) for rid, label in labels]
        with self._lock:
            self._feedback.extend(rows)
        self._wake.set()
        return len(rows)

    def _convert(self) -> None:
        """Turn the buffered batches into Arrow tables (kept until the next write).

        The writer thread does this every ``convert_interval_s``: small pieces
        often, so a server's event loop never waits behind one long conversion
        (it was the tail of the serving latency), and the file write itself
        only concatenates tables.
        """
        with self._lock:
            batches, self._batches = list(self._batches), deque()
            self._buffered = 0
        groups: dict[tuple[str, int, str], list[_Buffered]] = {}
        for batch in batches:
            day = f"{batch.at:%Y-%m-%d}"
            groups.setdefault((batch.model, batch.version, day), []).append(batch)
        with self._write_lock:
            for key, group in groups.items():
                self._tables.setdefault(key, []).append(_to_table(group))
                self._converted += sum(b.rows() for b in group)

    def flush(self) -> None:
        """Write everything buffered now (from the caller's thread)."""
        self._convert()
        with self._lock:
            feedback, self._feedback = self._feedback, []
        with self._write_lock:
            tables, self._tables = self._tables, {}
            self._converted = 0
            for (model, version, day), parts in tables.items():
                table = (
                    parts[0]
                    if len(parts) == 1
                    else pa.concat_tables(parts, promote_options="permissive")
                )
                folder = self.root / "predictions" / model / f"v{version}" / f"date={day}"
                _write_atomic(table, folder)
                self.written_rows += table.num_rows
            self._last_write = time.monotonic()
        if feedback:
            table = pa.table(
                {
                    "request_id": [f[0] for f in feedback],
                    "label": [f[1] for f in feedback],
                    "time": pa.array([f[2] for f in feedback], type=pa.timestamp("us", tz="UTC")),
                }
            )
            _write_atomic(table, self.root / "feedback" / f"date={feedback[0][2]:%Y-%m-%d}")

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(min(self.convert_interval_s, self.flush_interval_s))
            self._wake.clear()
            try:
                due = time.monotonic() - self._last_write >= self.flush_interval_s
                self._convert()
                if due or self._converted >= self.segment_rows:
                    self.flush()
            except OSError:  # a full or vanished disk must not kill serving; retry next tick
                time.sleep(self.flush_interval_s)

    def close(self) -> None:
        """Stop the writer and write what is left."""
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=30)
        self.flush()

    def read(
        self,
        model: str | None = None,
        *,
        version: int | None = None,
        source: str | None = None,
        since: datetime | None = None,
        last: int | None = None,
    ) -> pa.Table:
        """Logged predictions (of ``model``, ``version``, ``source``), oldest first.

        ``since`` keeps rows logged at or after it and skips the day folders
        before it; ``last`` keeps the newest N rows and reads segments newest
        first only until it has them. So a monitoring window costs what the
        window holds, not what the whole log has grown to.
        """
        folder = self.root / "predictions" / (model or "")
        if model is not None and version is not None:
            folder = folder / f"v{version}"

        def keep(table: pa.Table) -> pa.Table:
            if table.num_rows == 0:
                return table
            if version is not None and model is None:
                table = table.filter(pc.equal(table.column("version"), version))
            if source is not None and "source" in table.column_names:
                table = table.filter(pc.equal(table.column("source"), source))
            if since is not None:
                cutoff = pa.scalar(since, type=pa.timestamp("us", tz="UTC"))
                table = table.filter(pc.greater_equal(table.column("time"), cutoff))
            return table

        files = _segments(folder, since)
        if last is None:
            return keep(_concat([pq.read_table(f) for f in files]))
        parts: list[pa.Table] = []
        rows = 0
        for path in reversed(files):
            part = keep(pq.read_table(path))
            parts.append(part)
            rows += part.num_rows
            if rows >= last:
                break
        table = _concat(parts[::-1])
        return table.slice(max(0, table.num_rows - last))

    def read_feedback(self, since: datetime | None = None) -> pa.Table:
        """Feedback rows (``request_id``, ``label``, ``time``), oldest first; ``since`` as for :meth:`read`."""
        return _concat([pq.read_table(f) for f in _segments(self.root / "feedback", since)])


def _segments(folder: Path, since: datetime | None) -> list[Path]:
    """Segment files under ``folder`` in time order, from the day of ``since`` on."""
    files = sorted(folder.rglob("*.parquet"), key=lambda p: (p.parent.name, p.name))
    if since is not None:
        day = f"date={since.astimezone(UTC):%Y-%m-%d}"
        files = [f for f in files if f.parent.name >= day]
    return files


def _concat(tables: list[pa.Table]) -> pa.Table:
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="permissive")
