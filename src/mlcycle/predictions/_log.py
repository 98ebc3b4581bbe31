"""The prediction log: what each model version was asked and what it answered.

Served requests and batch-scored rows are appended here off the hot path and
written as Parquet segments by a background thread: on an interval, when a
segment is full, and on close. A crash loses at most the last interval.

A write that fails (a full disk, a path the filesystem refuses) loses
nothing: its rows go back, in order, and are retried every interval, and the
writer logs one error line per ``report_interval_s`` naming the cause and the
rows waiting. The rows held unwritten are bounded (``max_buffer_rows``), so a
slow or full disk never grows memory without limit: beyond the bound the
oldest rows are dropped, each counted in ``dropped_rows`` (a server exports it
as ``mlcycle_log_dropped_rows``). ``close`` retries for a while, then counts
and names what it could not write.

Ground-truth labels that arrive later are written to ``feedback/`` segments
keyed by request id at once: when :meth:`PredictionLog.feedback` returns they
are on disk, so a server acknowledges only labels it keeps. Monitoring reads
both.

Layout under the log's root::

    predictions/MODEL/vVERSION/date=YYYY-MM-DD/HHMMSSffffff-<seq>-<random>.parquet
    feedback/date=YYYY-MM-DD/HHMMSSffffff-<seq>-<random>.parquet

Each segment is written to a temporary name and renamed, so a reader never
sees half a file. Needs numpy and pyarrow only.
"""

from __future__ import annotations

import itertools
import logging
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

from mlcycle._system import write_atomic
from mlcycle.predictions._refs import REF_INPUT, REF_ROW
from mlcycle.predictions._refs import input_column as _input_column

__all__ = ["LoggedBatch", "PredictionLog"]

_logger = logging.getLogger("mlcycle.predictions")

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
    labels: np.ndarray[Any, Any] | pa.Array | None = None  # Arrow text taken as it is
    probabilities: np.ndarray[Any, Any] | None = None
    values: np.ndarray[Any, Any] | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ood_score: np.ndarray[Any, Any] | None = None  # the OOD detector's score per row
    ood: np.ndarray[Any, Any] | None = None  # and its flag
    # a batch job's rows by reference (no inputs): its input's record id, each row's number
    input_ref: str | None = None
    input_rows: np.ndarray[Any, Any] | None = None

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
        if self.input_ref is not None and self.input_rows is not None:
            columns[REF_INPUT] = constant(self.input_ref, pa.string())
            columns[REF_ROW] = pa.array(np.asarray(self.input_rows, dtype=np.int64))
        for name, values in self.inputs.items():
            columns[INPUT_PREFIX + name] = _input_column(np.asarray(values), n)
        return pa.table(columns)


def _ids(ids: Sequence[str] | pa.Array) -> pa.Array:
    return ids if isinstance(ids, pa.Array) else pa.array(list(ids), type=pa.string())


def _labels(labels: Any) -> pa.Array:
    """Labels as strings: an Arrow string array as it is (a batch job takes its classes
    by index), ONNX Runtime's ``str`` objects and numpy text without a copy to lists."""
    if isinstance(labels, pa.Array) and pa.types.is_string(labels.type):
        return labels
    arr = np.asarray(labels)
    if arr.dtype == object or arr.dtype.kind == "U":
        try:
            return pa.array(arr, type=pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all str: the general way below
            pass
    return pa.array(arr.astype(str).tolist(), pa.string())


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
    labels: np.ndarray[Any, Any] | pa.Array | None
    probabilities: np.ndarray[Any, Any] | None
    values: np.ndarray[Any, Any] | None
    at: datetime
    ood_score: np.ndarray[Any, Any] | None
    ood: np.ndarray[Any, Any] | None
    input_ref: str | None
    input_rows: np.ndarray[Any, Any] | None

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
            b.input_ref if b.input_rows is not None else None,
            b.input_rows if b.input_ref is not None else None,
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
            self.input_ref,
            self.input_rows,
        )


def _layout(b: _Buffered) -> tuple[Any, ...]:
    return (
        b.names,
        b.labels is None,
        b.probabilities is None,
        b.values is None,
        b.ood is None,
        b.input_ref is None,
    )


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
        if all(isinstance(b.labels, pa.Array) for b in batches):  # batch jobs' chunks
            columns["label"] = pa.concat_arrays([_labels(b.labels) for b in batches])
        else:  # many small requests: one conversion for all of them
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
    if first.input_ref is not None:
        columns[REF_INPUT] = pa.array(repeat([b.input_ref for b in batches]), type=pa.string())
        columns[REF_ROW] = pa.array(
            np.concatenate([np.asarray(b.input_rows, dtype=np.int64) for b in batches])
        )
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

_Key = tuple[str, int, str]  # model, version, day: one segment folder


def _write_segment(table: pa.Table, folder: Path, *, sync: bool = False) -> Path:
    """Write ``table`` as a new segment in ``folder``: under a temporary name, then renamed.

    ``sync`` also flushes the file and its folder to the disk before returning,
    for what a caller acknowledges (feedback); prediction segments skip it
    (a crash may lose the last interval, as the module says).
    """
    new_folder = not folder.is_dir()
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    # Names sort in write order (microseconds, then this process's sequence number),
    # so a window reads its newest segments first; the random part keeps processes apart.
    final = folder / f"{now:%H%M%S%f}-{next(_SEQUENCE):08d}-{uuid.uuid4().hex[:8]}.parquet"
    # Dictionary-encode only text that repeats (names, labels, categories, input ids):
    # floats do not repeat, and request ids are unique. Statistics only on the time: no
    # reader filters on the others, and min/max of every string column cost a sixth of
    # a batch segment's write (bench/RESULTS.md, issue 22).
    text = [f.name for f in table.schema if pa.types.is_string(f.type) and f.name != "request_id"]
    options: dict[str, Any] = {
        "compression": "zstd",
        "compression_level": 1,
        "use_dictionary": text or False,
        "write_statistics": ["time"] if "time" in table.column_names else False,
    }

    def write(tmp: Path) -> None:
        # The file is opened and closed here, not by pyarrow: when a write fails
        # (ENOSPC) pyarrow's own writer also fails to close, and the file it
        # opened stayed open, its blocks held after the temporary file is unlinked.
        with pa.OSFile(str(tmp), "wb") as native:
            pq.write_table(table, native, **options)

    # with sync, also the new name of a new day's folder in its parent
    write_atomic(final, write, sync=sync, folders=(folder.parent,) if new_folder else ())
    return final


def _cause(exc: BaseException) -> str:
    """An error in a few words: ``[Errno 28] No space left on device`` (the path is said apart).

    The system's words for the errno, since pyarrow's own wrap them in its
    (``Error writing bytes to file. Detail: [errno 28] ...``).
    """
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"[Errno {exc.errno}] {os.strerror(exc.errno)}"
    return f"{type(exc).__name__}: {exc}"


class _Commit:
    """One caller's feedback rows, waiting to be written with whoever else is waiting."""

    __slots__ = ("done", "error", "rows")

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        self.rows = rows
        self.done = False
        self.error: BaseException | None = None


class PredictionLog:
    """Buffered, bounded, background writer of prediction and feedback segments.

    Args:
        root: the log's folder (a project uses ``.mlcycle/log``).
        flush_interval_s: write what is buffered at least this often; a failed
            write is retried at this pace.
        segment_rows: write as soon as this many rows are buffered.
        convert_interval_s: how often the writer turns buffered rows into Arrow
            tables between writes (small pieces keep a server's latency even).
        max_buffer_rows: the most rows held unwritten (waiting for the next
            write, or for a failed one to succeed); beyond it the oldest are
            dropped and counted in ``dropped_rows``.
        report_interval_s: while writes fail, one error line at most this often.
        close_timeout_s: how long :meth:`close` retries a failing write.

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
        report_interval_s: float = 60.0,
        close_timeout_s: float = 10.0,
    ) -> None:
        self.root = Path(root)
        self.flush_interval_s = flush_interval_s
        self.convert_interval_s = convert_interval_s
        self.segment_rows = segment_rows
        self.max_buffer_rows = max_buffer_rows
        self.report_interval_s = report_interval_s
        self.close_timeout_s = close_timeout_s
        self.dropped_rows = 0
        self.written_rows = 0
        # Rows wait as appended batches, then as Arrow tables (oldest first); a
        # write takes the tables and puts back, at the front, those it failed to
        # write. ``_held`` counts every row taken in and not yet written or
        # dropped, wherever it is (also while being converted or written).
        self._batches: deque[_Buffered] = deque()
        self._buffered = 0
        self._tables: deque[tuple[_Key, pa.Table]] = deque()
        self._converted = 0
        self._held = 0
        self._lock = threading.Lock()  # the counts and queues above; held briefly
        self._convert_lock = threading.Lock()  # one conversion at a time keeps the order
        self._write_lock = threading.Lock()  # one writer of prediction segments at a time
        self._commits: list[_Commit] = []  # feedback waiting for the next group write
        self._feedback_lock = threading.Lock()
        self._last_attempt = time.monotonic()
        self._failing_since: float | None = None
        self._dropped_when_failing = 0
        self._last_report = -float("inf")
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name="mlcycle-prediction-log", daemon=True
        )
        self._thread.start()

    @property
    def pending_rows(self) -> int:
        """Rows taken in and not yet written (nor dropped)."""
        return self._held

    def append(self, batch: LoggedBatch) -> None:
        """Queue a batch; never blocks on disk."""
        buffered = _Buffered.of(batch)
        with self._lock:
            self._batches.append(buffered)
            self._buffered += len(batch)
            self._held += len(batch)
            if self._held > self.max_buffer_rows:
                self._trim()
            full = self._buffered >= self.segment_rows
        if full:
            self._wake.set()

    def _trim(self) -> None:
        """Drop the oldest rows beyond ``max_buffer_rows``, counting each; call with ``_lock``."""
        excess = self._held - self.max_buffer_rows
        while excess > 0 and self._tables:
            key, table = self._tables[0]
            cut = min(excess, table.num_rows)
            if cut == table.num_rows:
                self._tables.popleft()
            else:
                self._tables[0] = (key, table.slice(cut))
            self._converted -= cut
            self._held -= cut
            self.dropped_rows += cut
            excess -= cut
        while excess > 0 and self._batches:
            rows = self._batches.popleft().rows()
            self._buffered -= rows
            self._held -= rows
            self.dropped_rows += rows
            excess -= rows

    def feedback(self, labels: Iterable[tuple[str, Any]]) -> int:
        """Write ground-truth labels for request ids now; returns how many.

        The labels are on disk (flushed and renamed into place) when this
        returns, so a server may acknowledge them; when the write fails none of
        them is written and the error is raised. Callers that arrive while a
        write is under way are written together by the next one (a group
        commit), so a busy feedback route makes few files.

        Raises:
            OSError: the labels could not be written.
        """
        rows = [(str(rid), str(label)) for rid, label in labels]
        if not rows:
            return 0
        mine = _Commit(rows)
        with self._lock:
            self._commits.append(mine)
        with self._feedback_lock:
            if not mine.done:  # nobody took it along: write everything waiting
                with self._lock:
                    group, self._commits = self._commits, []
                error: BaseException | None = None
                try:
                    self._write_feedback([row for commit in group for row in commit.rows])
                except BaseException as exc:
                    error = exc
                for commit in group:
                    commit.error, commit.done = error, True
        if mine.error is not None:
            raise mine.error
        return len(rows)

    def _write_feedback(self, rows: list[tuple[str, str]]) -> None:
        now = datetime.now(UTC)
        table = pa.table(
            {
                "request_id": pa.array([r[0] for r in rows], type=pa.string()),
                "label": pa.array([r[1] for r in rows], type=pa.string()),
                "time": pa.repeat(pa.scalar(now, pa.timestamp("us", tz="UTC")), len(rows)),
            }
        )
        _write_segment(table, self.root / "feedback" / f"date={now:%Y-%m-%d}", sync=True)

    def _convert(self) -> None:
        """Turn the buffered batches into Arrow tables (kept until they are written).

        The writer thread does this every ``convert_interval_s``: small pieces
        often, so a server's event loop never waits behind one long conversion
        (it was the tail of the serving latency), and the file write itself
        only concatenates tables.
        """
        with self._convert_lock:
            with self._lock:
                if not self._batches:
                    return
                batches, self._batches = list(self._batches), deque()
                self._buffered = 0
            groups: dict[_Key, list[_Buffered]] = {}
            for batch in batches:
                groups.setdefault((batch.model, batch.version, f"{batch.at:%Y-%m-%d}"), []).append(
                    batch
                )
            tables: list[tuple[_Key, pa.Table]] = []
            for key, group in groups.items():
                try:
                    tables.append((key, _to_table(group)))
                except Exception as exc:  # rows Arrow cannot take: count and say, keep the rest
                    lost = sum(b.rows() for b in group)
                    with self._lock:
                        self._held -= lost
                        self.dropped_rows += lost
                    self._report(f"converting {lost:,} rows of {key[0]} v{key[1]}", exc)
            with self._lock:
                self._tables.extend(tables)
                self._converted += sum(t.num_rows for _, t in tables)
                self._trim()

    def _folder(self, key: _Key) -> Path:
        model, version, day = key
        return self.root / "predictions" / model / f"v{version}" / f"date={day}"

    def _write_tables(self) -> tuple[Path, Exception] | None:
        """Write the converted tables, one segment per model, version and day.

        The tables of a segment that fails go back to the front of the queue,
        in order, and wait for the next try; the other segments are written
        anyway. Returns the first failure (folder and error), or None.
        """
        with self._write_lock:
            self._last_attempt = time.monotonic()
            with self._lock:
                taken = list(self._tables)
                self._tables.clear()
                self._converted = 0
            groups: dict[_Key, list[pa.Table]] = {}
            for key, part in taken:
                groups.setdefault(key, []).append(part)
            failed: list[tuple[_Key, pa.Table]] = []
            first: tuple[Path, Exception] | None = None
            for key, parts in groups.items():
                table: pa.Table | None = None
                try:
                    table = (
                        parts[0]
                        if len(parts) == 1
                        else pa.concat_tables(parts, promote_options="permissive")
                    )
                    _write_segment(table, self._folder(key))
                except Exception as exc:
                    # one table per segment from now on: the next try concatenates less
                    failed += [(key, table)] if table is not None else [(key, p) for p in parts]
                    first = first or (self._folder(key), exc)
                    continue
                with self._lock:
                    self._held -= table.num_rows
                    self.written_rows += table.num_rows
            if failed:
                with self._lock:
                    self._tables.extendleft(reversed(failed))
                    self._converted += sum(t.num_rows for _, t in failed)
                    self._trim()
            return first

    def flush(self) -> None:
        """Write everything buffered now (from the caller's thread).

        Raises:
            OSError: a segment could not be written; its rows stay buffered
                and are retried by the writer thread or the next flush.
        """
        self._convert()
        failure = self._write_tables()
        if failure is not None:
            raise failure[1]

    def discard(self) -> int:
        """Forget every row not yet written; returns how many (they are not counted as dropped).

        For a caller that will log those rows again: a batch job whose chunk
        could not be logged does not commit the chunk, and its resume scores
        and logs it anew.
        """
        with self._convert_lock, self._write_lock, self._lock:
            rows = self._held
            self._batches.clear()
            self._tables.clear()
            self._buffered = self._converted = self._held = 0
        return rows

    def _report(self, what: str, exc: BaseException, *, now: bool = False) -> None:
        """One error line naming the cause, at most once per ``report_interval_s`` unless ``now``."""
        at = time.monotonic()
        if not now and at - self._last_report < self.report_interval_s:
            return
        self._last_report = at
        with self._lock:
            waiting, dropped = self._held, self.dropped_rows
        _logger.error(
            "prediction log: %s failed: %s; %s rows waiting, %s dropped",
            what,
            _cause(exc),
            f"{waiting:,}",
            f"{dropped:,}",
        )

    def _failed(self, folder: Path, exc: Exception) -> None:
        first = self._failing_since is None
        if first:
            self._failing_since = time.monotonic()
            self._dropped_when_failing = self.dropped_rows
        self._report(f"write to {folder}", exc, now=first)

    def _recovered(self) -> None:
        if self._failing_since is None:
            return
        _logger.warning(
            "prediction log: writing again after %.1f s of failed writes; %s rows dropped meanwhile",
            time.monotonic() - self._failing_since,
            f"{self.dropped_rows - self._dropped_when_failing:,}",
        )
        self._failing_since = None

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(min(self.convert_interval_s, self.flush_interval_s))
            self._wake.clear()
            if self._closed:
                break  # close() writes the rest
            try:
                self._convert()
                waited = time.monotonic() - self._last_attempt
                full = self._failing_since is None and self._converted >= self.segment_rows
                if waited >= self.flush_interval_s or full:
                    failure = self._write_tables()
                    if failure is None:
                        self._recovered()
                    else:
                        self._failed(*failure)
            except Exception as exc:  # a bug: say so, and keep the writer alive for the rest
                self._report("the writer thread", exc)

    def close(self) -> None:
        """Stop the writer and write what is left.

        A failing write is retried, with growing pauses, for up to
        ``close_timeout_s`` (space may come back while a server drains); the
        rows still unwritten then are counted in ``dropped_rows`` and named in
        one error line, instead of an exception out of a shutdown path.
        """
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=30)
        deadline = time.monotonic() + self.close_timeout_s
        pause = 0.05
        while True:
            self._convert()
            failure = self._write_tables()
            if failure is None:
                self._recovered()
                return
            if time.monotonic() + pause > deadline:
                break
            time.sleep(pause)
            pause = min(2 * pause, 1.0)
        with self._lock:
            lost = self._held
            self._batches.clear()
            self._tables.clear()
            self._buffered = self._converted = self._held = 0
            self.dropped_rows += lost
        folder, exc = failure
        _logger.error(
            "prediction log: closing with %s rows not written (counted as dropped): "
            "write to %s failed: %s",
            f"{lost:,}",
            folder,
            _cause(exc),
        )

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
