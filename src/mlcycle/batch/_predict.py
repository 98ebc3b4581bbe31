"""Run a model's ONNX graph over a chunk, as fast as ONNX Runtime allows.

Two things make a chunk cheaper than :meth:`Predictor.predict` would:

* the chunk is run in slices (ONNX Runtime calls) of a few thousand rows, so
  that the hidden activations stay in the core's cache. The best size
  depends on the model and the machine (the default 30-128-64-2 MLP ran 4.2M
  rows/s on one thread in 4,096-row slices, 3.1M in 16,384-row ones and 2.4M
  in 65,536-row ones; a linear model wants larger calls, a wide one smaller),
  so a large job measures it: :meth:`ChunkPredictor.calibrate` times a few
  sizes on the first chunk's rows and keeps the fastest. The slice size
  never changes a prediction: each row's outputs depend on that row alone;
* for a classifier, only ``probabilities`` is asked for and the label is
  taken as the class of the largest probability, which is what the
  registry's graph computes (``ArgMax`` then ``LabelEncoder``): ONNX Runtime
  then makes no string tensor and Python no string per row. This is checked
  once per job on the first rows against the graph's own ``label`` output;
  should a graph ever label otherwise, its labels are used instead.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlcycle.registry import Prediction, Predictor
from mlcycle.registry._ort import ort_errors

__all__ = ["CANDIDATE_SLICES", "SLICE_ROWS", "ChunkPredictor", "Scored"]

SLICE_ROWS = 4_096
"""The slice size used until (or unless) one is measured."""
CANDIDATE_SLICES = (1_024, 2_048, 4_096, 8_192, 16_384, 32_768, 65_536)
"""The slice sizes calibration may choose, searched outward from :data:`SLICE_ROWS`."""
_TIMED_ROWS = 8_192  # rows per timing at least: a few ms, well above the clock's resolution
_ROUNDS = 2  # turns per size timed
_BETTER = 1.05  # how much faster another size must be to be chosen
_CHECK_ROWS = 512

Feeds = dict[str, np.ndarray[Any, Any]]


@dataclass(frozen=True)
class Scored:
    """A chunk's predictions, and each row's class number when the label came from it."""

    prediction: Prediction
    label_index: np.ndarray[Any, Any] | None


class ChunkPredictor:
    """Scores validated feeds with one predictor; safe to call from several threads.

    Args:
        predictor: the model version.
        slice_rows: rows per ONNX Runtime call; ``None``: :data:`SLICE_ROWS`
            until :meth:`calibrate` has measured a better one.
    """

    def __init__(self, predictor: Predictor, slice_rows: int | None = None) -> None:
        self.predictor = predictor
        self.classes = np.asarray(predictor.classes or [], dtype=str)
        self.slice_rows = slice_rows or SLICE_ROWS
        self.rates: dict[int, float] = {}  # rows/s measured per slice size
        self._argmax_labels: bool | None = None
        self._lock = threading.Lock()

    def __call__(self, feeds: Feeds, rows: int) -> Scored:
        if self.predictor.task == "regression":
            values = self._run(["value"], feeds, rows)[0]
            return Scored(Prediction(None, None, values, None, self.predictor.ref), None)
        if not self._argmax_ok(feeds):
            prediction = self.predictor.run(feeds)
            return Scored(prediction, None)
        probabilities = self._run(["probabilities"], feeds, rows)[0]
        index = probabilities.argmax(axis=1)
        labels = self.classes[index]
        prediction = Prediction(
            labels, probabilities, None, self.predictor.classes, self.predictor.ref
        )
        return Scored(prediction, index)

    def calibrate(self, feeds: Feeds, rows: int) -> int:
        """Time slice sizes on these rows, keep the fastest as :attr:`slice_rows` and return it.

        A hill climb over :data:`CANDIDATE_SLICES` from :data:`SLICE_ROWS`:
        the sizes either side of the best so far are timed, and the faster
        of them becomes the best if it is ``_BETTER`` times as fast (so that
        noise does not move the choice), until neither is. Each timing runs
        at least ``_TIMED_ROWS`` of the chunk's first rows (again, if the
        chunk is shorter); the sizes timed together take turns, ``_ROUNDS``
        times, and the fastest turn counts, since a busy machine only ever
        slows a run down. The rates are kept in :attr:`rates`. Other threads
        go on scoring meanwhile.
        """
        if not rows or not self._argmax_ok(feeds):
            return self.slice_rows
        names = ["value"] if self.predictor.task == "regression" else ["probabilities"]
        sizes = [s for s in CANDIDATE_SLICES if s <= max(rows, SLICE_ROWS)]
        seconds: dict[int, float] = {}  # per row, the fastest turn

        def time_sizes(group: list[int]) -> None:
            for _ in range(_ROUNDS):
                for size in group:
                    n = min(rows, max(size, _TIMED_ROWS))
                    part = {k: v[:n] for k, v in feeds.items()}
                    calls = -(-_TIMED_ROWS // n)
                    started = time.perf_counter()
                    for _ in range(calls):
                        self._run(names, part, n, size)
                    per_row = (time.perf_counter() - started) / (calls * n)
                    seconds[size] = min(seconds.get(size, per_row), per_row)

        best = sizes.index(SLICE_ROWS)
        time_sizes(sizes[max(0, best - 1) : best + 2])
        while True:
            around = [i for i in (best - 1, best + 1) if 0 <= i < len(sizes)]
            time_sizes([sizes[i] for i in around if sizes[i] not in seconds])
            faster = min(around, key=lambda i: seconds[sizes[i]])
            if seconds[sizes[faster]] * _BETTER >= seconds[sizes[best]]:
                break
            best = faster
        self.rates = {size: 1.0 / s for size, s in sorted(seconds.items())}
        self.slice_rows = sizes[best]
        return self.slice_rows

    def _run(
        self, names: list[str], feeds: Feeds, rows: int, size: int | None = None
    ) -> list[np.ndarray[Any, Any]]:
        session = self.predictor.session
        size = size or self.slice_rows
        with ort_errors(self.predictor.ref):
            if rows <= size:
                return list(session.run(names, feeds))
            slices = [
                session.run(names, {k: v[i : i + size] for k, v in feeds.items()})
                for i in range(0, rows, size)
            ]
        return [np.concatenate([s[j] for s in slices]) for j in range(len(names))]

    def _argmax_ok(self, feeds: Feeds) -> bool:
        """Whether the graph's labels are the argmax classes (checked once, on the first rows)."""
        if self.predictor.task == "regression":
            return True
        with self._lock:
            if self._argmax_labels is None:
                head = {k: v[:_CHECK_ROWS] for k, v in feeds.items()}
                graph = self.predictor.run(head)
                assert graph.labels is not None and graph.probabilities is not None
                mine = self.classes[graph.probabilities.argmax(axis=1)]
                self._argmax_labels = bool(np.array_equal(mine, graph.labels.astype(str)))
            return self._argmax_labels
