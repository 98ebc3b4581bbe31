"""The scoring pipeline: read here, score in a thread pool, write in input order.

The calling thread reads the input chunk by chunk while a small pool of
worker threads validates, scores (ONNX Runtime releases the GIL), logs and
commits each chunk as a numbered part. At most ``workers + 1`` chunks are in
flight, so memory does not grow with the file. Finished chunks are appended
to the output by the calling thread strictly in chunk order, so the output's
order is the input's whichever worker finishes first.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from mlcycle.batch._convert import check_chunk
from mlcycle.batch._output import BatchLog, output_table, rejects_text, request_ids
from mlcycle.batch._parts import OutputWriter, PartCounts, WorkFolder
from mlcycle.batch._predict import ChunkPredictor
from mlcycle.batch._source import Source
from mlcycle.registry import Predictor

__all__ = ["ChunkScorer", "Progress", "Totals", "run_chunks", "sampled"]

Progress = Callable[[int, int | None], None]
"""Called with (rows done, total rows or ``None`` when the input does not record it)."""


@dataclass(frozen=True)
class Done:
    """A committed chunk, handed back to the calling thread to be appended to the output."""

    counts: PartCounts
    table: pa.Table
    rejects: str


def sampled(row_numbers: np.ndarray[Any, Any], fraction: float) -> np.ndarray[Any, Any]:
    """Which input rows a job logs when it logs ``fraction`` of them.

    Decided by the row number alone (a multiplicative hash), so a resumed job
    logs the same rows as an uninterrupted one, and the sample is spread over
    the whole file rather than its start.
    """
    hashed = (row_numbers.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
    return hashed < np.uint64(int(fraction * 2**24))


class ChunkScorer:
    """Scores one chunk in a worker thread: validate, predict, log, commit the part.

    With ``calibrate``, the first chunk with rows to score first measures the
    ONNX Runtime call size (see :meth:`ChunkPredictor.calibrate`).
    """

    def __init__(
        self,
        predictor: Predictor,
        work: WorkFolder,
        ids: list[str],
        job_id: str,
        log: BatchLog | None,
        log_sample: float = 1.0,
        context: list[str] | None = None,
        input_ref: str | None = None,
        slice_rows: int | None = None,
        calibrate: bool = False,
    ) -> None:
        self.predictor = predictor
        self.run = ChunkPredictor(predictor, slice_rows)
        self.calibration_s = 0.0  # time the calibration took (0: not done)
        self._calibrate = calibrate
        self._calibrate_lock = threading.Lock()
        self.work = work
        self.ids = ids
        self.job_id = job_id
        self.log = log
        self.log_sample = log_sample
        self.context = context or []
        self.input_ref = input_ref  # log rows by reference to this recorded input
        # the classes as Arrow text: a chunk's labels for the log are taken by class number
        self.classes = pa.array([str(c) for c in predictor.classes or []], pa.string())

    def __call__(self, index: int, first_row: int, table: pa.Table) -> Done:
        started = time.perf_counter()
        signature = self.predictor.signature
        checked = check_chunk(table, signature, self.predictor.feeds, first_row=first_row)
        rows = checked.rows if checked.rows is not None else np.arange(table.num_rows)
        ids = table.select(self.ids)
        if self._calibrate and len(rows):
            self._calibrate_on(checked.feeds, len(rows))
        scored = self.run(checked.feeds, len(rows)) if len(rows) else None
        if self.log is not None and scored is not None:
            latency_ms = (time.perf_counter() - started) * 1000.0
            feeds, prediction, logged = checked.feeds, scored.prediction, rows
            label_index = scored.label_index
            if self.input_ref is not None:  # the input is on disk: the log points at it
                feeds = {}
            elif self.context:  # logged as text beside the inputs, as served (never fed)
                feeds = {**feeds}
                for name in self.context:
                    column = table.column(name).cast(pa.string()).take(pa.array(rows))
                    feeds[name] = column.to_numpy(zero_copy_only=False).astype(object)
            if self.log_sample < 1.0:
                keep = np.flatnonzero(sampled(rows + first_row, self.log_sample))
                feeds = {k: v[keep] for k, v in feeds.items()}
                prediction = prediction.take(keep)
                logged = rows[keep]
                label_index = None if label_index is None else label_index[keep]
            if len(logged):
                request = request_ids(ids, logged, self.job_id, first_row)
                self.log.write(
                    request,
                    feeds,
                    prediction,
                    latency_ms,
                    input_ref=self.input_ref,
                    input_rows=None if self.input_ref is None else logged + first_row,
                    labels=None
                    if label_index is None
                    else self.classes.take(pa.array(label_index)),
                )
        if checked.rows is not None:
            ids = ids.take(pa.array(rows))
        out = output_table(
            ids,
            scored.prediction if scored else None,
            signature,
            scored.label_index if scored else None,
        )
        rejects = rejects_text(table, checked.rejects, first_row)
        counts = PartCounts(table.num_rows, len(checked.rejects))
        self.work.write_part(index, out, counts, rejects)
        return Done(counts, out, rejects)

    def _calibrate_on(self, feeds: dict[str, np.ndarray[Any, Any]], rows: int) -> None:
        """Measure the slice size on the first chunk a worker takes; the others do not wait."""
        with self._calibrate_lock:
            if not self._calibrate:
                return
            self._calibrate = False
        started = time.perf_counter()
        self.run.calibrate(feeds, rows)
        self.calibration_s = time.perf_counter() - started


@dataclass
class Totals:
    """How many chunks the input has, and how many rows this run scored."""

    chunks: int = 0
    rows: int = 0


def run_chunks(
    source: Source,
    columns: list[str],
    chunk_rows: int,
    done: dict[int, PartCounts],
    score: ChunkScorer,
    writer: OutputWriter,
    workers: int,
    progress: Progress | None,
) -> Totals:
    """Read chunks here, score them in the pool, append them to the output in input order.

    Reading starts at the first chunk an earlier run did not finish (Parquet
    skips the row groups before it; CSV is read through); chunks that run
    finished are appended from their parts, in their place.
    """
    first = 0
    while first in done:
        first += 1
    totals = Totals()
    appended = 0  # chunks appended to the output so far
    rows_done = sum(c.rows for c in done.values())
    if progress is not None:
        progress(rows_done, source.total_rows)

    def append_done_before(index: int) -> None:
        nonlocal appended
        while appended < index:
            writer.append(*score.work.read_part(appended))
            appended += 1

    def collect(index: int, future: Future[Done]) -> None:
        nonlocal rows_done, appended
        result = future.result()
        append_done_before(index)
        writer.append(result.table, result.rejects)
        appended = index + 1
        totals.rows += result.counts.rows
        rows_done += result.counts.rows
        if progress is not None:
            progress(rows_done, source.total_rows)

    pending: deque[tuple[int, Future[Done]]] = deque()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="mlcycle-score")
    try:
        totals.chunks = first
        for index, table in enumerate(source.chunks(columns, chunk_rows, start=first), first):
            totals.chunks = index + 1
            if index in done:
                continue
            pending.append((index, pool.submit(score, index, index * chunk_rows, table)))
            while len(pending) > workers:
                collect(*pending.popleft())
        while pending:
            collect(*pending.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    totals.chunks = max(totals.chunks, max(done, default=-1) + 1)
    append_done_before(totals.chunks)
    return totals
