"""A registered model version, ready to predict on ONNX Runtime alone (no torch).

Example (in a project where ``fraud`` is registered)::

    import mlcycle
    model = mlcycle.load("fraud@champion")
    model.predict([{"amount": 12.5, "country": "fr"}]).labels   # array(['legit'], dtype=object)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from mlcycle._system import cores
from mlcycle.registry._inputs import Feeds, FeedsPlan, to_feeds
from mlcycle.registry._ort import ORT_ERRORS, from_ort, ort_errors

__all__ = ["Prediction", "Predictor", "session_options"]


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """ORT options: ``threads`` intra-op threads (default: the cores available, at most 4)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or min(4, cores())
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


@dataclass(frozen=True)
class Prediction:
    """Predictions for a batch of rows.

    Attributes:
        labels: predicted class names (classification), else ``None``.
        probabilities: ``[rows, classes]`` (classification), else ``None``.
        values: predicted values (regression), else ``None``.
        classes: the class names, in the probabilities' column order.
        version: ``name@version`` of the model that answered.
    """

    labels: np.ndarray[Any, Any] | None
    probabilities: np.ndarray[Any, Any] | None
    values: np.ndarray[Any, Any] | None
    classes: list[str] | None
    version: str

    def take(self, rows: Any) -> Prediction:
        """The predictions of some rows (positions, or a boolean mask)."""

        def pick(array: np.ndarray[Any, Any] | None) -> np.ndarray[Any, Any] | None:
            return None if array is None else array[rows]

        return Prediction(
            pick(self.labels),
            pick(self.probabilities),
            pick(self.values),
            self.classes,
            self.version,
        )

    def to_records(self) -> list[dict[str, Any]]:
        """One JSON-able mapping per row."""
        if self.values is not None:
            return [{"value": float(v)} for v in self.values]
        assert self.labels is not None and self.probabilities is not None
        classes = self.classes or []
        return [
            {"label": str(label), "probabilities": dict(zip(classes, map(float, p), strict=True))}
            for label, p in zip(self.labels, self.probabilities, strict=True)
        ]


class Predictor:
    """Runs one model version's ONNX graph; checks inputs against its signature."""

    def __init__(
        self,
        onnx_bytes: bytes,
        signature: dict[str, Any],
        *,
        name: str = "model",
        version: int | None = None,
        threads: int | None = None,
    ) -> None:
        self.signature = signature
        self.name = name
        self.version = version
        with ort_errors(self.ref, loading=True):
            self.session = ort.InferenceSession(
                onnx_bytes,
                sess_options=session_options(threads),
                providers=["CPUExecutionProvider"],
            )
        self.task: str = signature["task"]
        self.classes: list[str] | None = signature.get("classes")
        self.input_specs: dict[str, Any] = {spec["name"]: spec for spec in signature["inputs"]}
        self.plan = FeedsPlan.of(signature)
        self._outputs = [o.name for o in self.session.get_outputs()]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}" if self.version is not None else self.name

    @property
    def input_names(self) -> list[str]:
        return [spec["name"] for spec in self.signature["inputs"]]

    def feeds(self, data: Any, *, max_rows: int | None = None) -> Feeds:
        """Validated graph inputs for ``data`` (see :func:`to_feeds`)."""
        return to_feeds(data, self.signature, max_rows=max_rows, plan=self.plan)

    def run(self, feeds: dict[str, np.ndarray[Any, Any]]) -> Prediction:
        """Run already validated feeds.

        Raises:
            DataError: ONNX Runtime refused the feeds (a type, a rank, a name).
            InferenceError: ONNX Runtime failed while running the graph.
        """
        try:
            answers = self.session.run(self._outputs, feeds)
        except ORT_ERRORS as exc:
            raise from_ort(exc, self.ref) from exc
        outputs = dict(zip(self._outputs, answers, strict=True))
        if self.task == "regression":
            return Prediction(None, None, outputs["value"], None, self.ref)
        return Prediction(outputs["label"], outputs["probabilities"], None, self.classes, self.ref)

    def predict(self, data: Any) -> Prediction:
        """Predict a DataFrame, Arrow table, numpy array, mapping of columns or records.

        Raises:
            DataError: a column is missing or unexpected, or a value is unusable.
        """
        return self.run(self.feeds(data))

    def predict_proba(self, data: Any) -> np.ndarray[Any, Any]:
        """Class probabilities, ``[rows, classes]``."""
        probabilities = self.predict(data).probabilities
        if probabilities is None:
            raise TypeError(f"{self.ref} is a regression model: it has no probabilities")
        return probabilities

    def __repr__(self) -> str:
        return f"Predictor({self.ref!r}, task={self.task!r}, inputs={len(self.input_names)})"
