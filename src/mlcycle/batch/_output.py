"""What a scored chunk becomes: output columns, rejects lines and prediction-log entries."""

from __future__ import annotations

import csv
import io
import math
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlcycle.batch._convert import Reject
from mlcycle.predictions import LoggedBatch, PredictionLog
from mlcycle.registry import Prediction

__all__ = [
    "BatchLog",
    "output_columns",
    "output_table",
    "rejects_header",
    "rejects_text",
    "request_ids",
]


def output_columns(signature: Mapping[str, Any]) -> list[str]:
    """The prediction columns an output gets: ``label`` and ``proba_<class>``, or ``value``."""
    if signature["task"] == "regression":
        return ["value"]
    return ["label", *(f"proba_{c}" for c in signature.get("classes") or [])]


def output_table(
    ids: pa.Table,
    prediction: Prediction | None,
    signature: Mapping[str, Any],
    label_index: np.ndarray[Any, Any] | None = None,
) -> pa.Table:
    """The id columns of the scored rows, then their predictions (``None``: no row scored).

    ``label_index`` (each row's class number), when given, builds the label
    column by one vectorised take instead of converting Python strings.
    """
    columns: list[Any] = list(ids.columns)
    names = list(ids.column_names)
    classes = list(signature.get("classes") or [])
    if signature["task"] == "regression":
        values = prediction.values if prediction is not None else None
        columns.append(pa.array(_or_empty(values, np.float32), type=pa.float32()))
    else:
        if label_index is not None:
            columns.append(pa.array(classes, type=pa.string()).take(pa.array(label_index)))
        else:
            labels = prediction.labels if prediction is not None else None
            columns.append(pa.array(_or_empty(labels, object), type=pa.string()))
        probabilities = prediction.probabilities if prediction is not None else None
        for j in range(len(classes)):
            p = (
                np.empty(0, np.float32)
                if probabilities is None
                else np.ascontiguousarray(probabilities[:, j])
            )
            columns.append(pa.array(p, type=pa.float32()))
    names.extend(output_columns(signature))
    return pa.Table.from_arrays(columns, names=names)


def _or_empty(values: np.ndarray[Any, Any] | None, dtype: Any) -> np.ndarray[Any, Any]:
    return np.empty(0, dtype=dtype) if values is None else values


def rejects_header(columns: Sequence[str]) -> str:
    """The rejects file's first line: ``row``, ``reason``, then the columns read."""
    return _csv_lines([["row", "reason", *columns]])


def rejects_text(table: pa.Table, rejects: Sequence[Reject], first_row: int) -> str:
    """CSV lines for a chunk's rejected rows: input row number, reason, raw values."""
    if not rejects:
        return ""
    lines = []
    for reject in rejects:
        values = table.slice(reject.row, 1).to_pylist()[0]
        lines.append([first_row + reject.row, reject.reason, *map(_cell, values.values())])
    return _csv_lines(lines)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _csv_lines(rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def request_ids(ids: pa.Table, rows: np.ndarray[Any, Any], job_id: str, first_row: int) -> pa.Array:
    """One request id per scored row: its first id column's value, else ``JOB:ROW``.

    ``rows`` are the scored rows' positions in the chunk; ``first_row`` is the
    input row number of the chunk's first row.
    """
    fallback = pc.binary_join_element_wise(
        job_id, pc.cast(pa.array(rows + first_row), pa.string()), ":"
    )
    if ids.num_columns == 0:
        return fallback
    own = pc.cast(ids.column(0).take(pa.array(rows)), pa.string())
    coalesced = pc.coalesce(own, fallback)
    return coalesced.combine_chunks() if isinstance(coalesced, pa.ChunkedArray) else coalesced


class BatchLog:
    """Writes each scored chunk to the project's prediction log before the chunk is committed.

    Each worker thread has its own :class:`PredictionLog` and flushes it at
    once, so when a chunk's part file exists its predictions are on disk too
    (a job killed between the two logs that chunk again on resume, under the
    same request ids).
    """

    def __init__(self, root: Path, model: str, version: int) -> None:
        self.root = root
        self.model = model
        self.version = version
        self._local = threading.local()
        self._logs: list[PredictionLog] = []
        self._lock = threading.Lock()

    def write(
        self,
        ids: pa.Array,
        feeds: Mapping[str, np.ndarray[Any, Any]],
        prediction: Prediction,
        latency_ms: float,
        *,
        input_ref: str | None = None,
        input_rows: np.ndarray[Any, Any] | None = None,
        labels: pa.Array | None = None,
    ) -> None:
        """Log one chunk's scored rows: their inputs (``feeds``), or a reference to them.

        With ``input_ref`` (the id :meth:`Source.record` gave the input) and
        ``input_rows`` (each row's number in the input), ``feeds`` is ``{}``:
        the log points at the input instead of holding a second copy of it.
        ``labels``, when given, are the prediction's labels as Arrow text (taken by
        class number: cheaper than converting each label string).
        """
        log: PredictionLog | None = getattr(self._local, "log", None)
        if log is None:
            # flushed by hand after every chunk, so the writer thread and the buffer cap stay idle
            log = PredictionLog(
                self.root, flush_interval_s=3600.0, segment_rows=2**62, max_buffer_rows=2**62
            )
            self._local.log = log
            with self._lock:
                self._logs.append(log)
        log.append(
            LoggedBatch(
                self.model,
                self.version,
                "batch",
                ids,
                feeds,
                latency_ms,
                labels=prediction.labels if labels is None else labels,
                probabilities=prediction.probabilities,
                values=prediction.values,
                input_ref=input_ref,
                input_rows=input_rows,
            )
        )
        try:
            log.flush()
        except BaseException:
            log.discard()  # the chunk is not committed: its resume logs these rows again
            raise

    def close(self) -> None:
        with self._lock:
            logs, self._logs = self._logs, []
        for log in logs:
            log.close()
