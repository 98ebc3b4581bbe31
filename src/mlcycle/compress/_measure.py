"""Measure every variant of a model the same way, in one run, on this machine.

Size is the graph's bytes. Accuracy is the test split's, with bootstrap
intervals, computed from what ONNX Runtime answers (the graph that would be
deployed, not the PyTorch module it came from). Latency is the median of
many calls at batch 1 and at the deployment batch size, every variant on the
same number of ORT threads, the variants interleaved round by round so that
a noisy neighbour slows them all alike.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import pyarrow as pa

from mlcycle.evaluate import classification_metrics, headline_with_ci, regression_metrics
from mlcycle.registry import Predictor
from mlcycle.registry._signature import true_targets

__all__ = ["Variant", "measure", "slow_ops", "true_targets"]

ROUNDS = 5
BLOCK_S = 0.04  # timed calls per variant per round: about this long


@dataclass
class Variant:
    """One model variant and what was measured of it.

    ``verdict`` is ``original``, ``chosen``, ``kept``, ``rejected`` or
    ``reported`` (measured, never chosen: fp16 on a CPU), with ``reason``.
    """

    method: str
    params: dict[str, Any]
    onnx: bytes = field(repr=False, default=b"")
    size_bytes: int = 0
    latency_ms: dict[int, float] = field(default_factory=dict)
    test: dict[str, Any] = field(default_factory=dict)
    test_ci: dict[str, Any] = field(default_factory=dict)
    test_metrics: dict[str, Any] = field(default_factory=dict)
    agreement: dict[str, Any] = field(default_factory=dict)
    parameters: int | None = None
    run_id: str | None = None
    verdict: str = ""
    reason: str = ""
    version: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("onnx", "test_metrics")}
        out["latency_ms"] = {str(k): v for k, v in self.latency_ms.items()}
        return out


def slow_ops(graph: bytes) -> list[str]:
    """Integer kernels known to be slow on many CPUs (ConvInteger, MatMulInteger) in the graph."""
    ops = {node.op_type for node in onnx.load_from_string(graph).graph.node}
    return sorted(ops & {"ConvInteger", "MatMulInteger"})


def measure(
    variants: list[Variant],
    signature: dict[str, Any],
    test: pa.Table,
    *,
    batches: tuple[int, ...],
    threads: int,
    rounds: int = ROUNDS,
    n_boot: int = 1000,
) -> None:
    """Fill in size, test metrics, agreement with ``variants[0]`` and latency, in place.

    ``variants[0]`` is the original: the others' answers are compared with its.
    """
    task = signature["task"]
    classes = [str(c) for c in signature.get("classes") or []] or None
    y = true_targets(test, signature)
    predictors: list[Predictor | None] = []
    reference: np.ndarray[Any, Any] | None = None
    for variant in variants:
        if variant.error is not None:
            predictors.append(None)
            continue
        predictor = Predictor(variant.onnx, signature, name=variant.method, threads=threads)
        predictors.append(predictor)
        variant.size_bytes = len(variant.onnx)
        answer = predictor.predict(test)
        if task == "regression":
            assert answer.values is not None
            out = answer.values.astype(np.float64)
            variant.test_metrics = regression_metrics(y, out)
            names: tuple[str, ...] = ("mae", "rmse", "r2")
        else:
            assert answer.probabilities is not None and classes is not None
            out = answer.probabilities.astype(np.float64)
            variant.test_metrics = classification_metrics(y, out, classes)
            names = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc")
        variant.test = {k: variant.test_metrics.get(k) for k in names}
        variant.test_ci = headline_with_ci(task, y, out, classes, n_boot=n_boot)
        if reference is None:
            reference = out
        else:
            variant.agreement = _agreement(reference, out, task)
    feeds = {}
    for i, maybe in enumerate(predictors):
        if maybe is None:
            continue
        for batch in batches:
            rows = test.take([j % max(test.num_rows, 1) for j in range(batch)])
            feeds[i, batch] = maybe.feeds(rows)
            for _ in range(3):  # warm up: first calls allocate
                maybe.run(feeds[i, batch])
    times: dict[tuple[int, int], list[float]] = {key: [] for key in feeds}
    order = [i for i, p in enumerate(predictors) if p is not None]
    for round_ in range(rounds):
        turn = order[round_ % len(order) :] + order[: round_ % len(order)] if order else []
        for i in turn:
            timed = predictors[i]
            assert timed is not None
            for batch in batches:
                block = feeds[i, batch]
                deadline = time.perf_counter() + BLOCK_S
                while True:
                    start = time.perf_counter()
                    timed.run(block)
                    end = time.perf_counter()
                    times[i, batch].append((end - start) * 1000)
                    if end > deadline and len(times[i, batch]) >= 3 * (round_ + 1):
                        break
    for (i, batch), samples in times.items():
        variants[i].latency_ms[batch] = float(statistics.median(samples))


def _agreement(
    reference: np.ndarray[Any, Any], out: np.ndarray[Any, Any], task: str
) -> dict[str, Any]:
    """How closely a variant answers like the original on the test rows."""
    if task == "regression":
        scale = np.maximum(1.0, np.abs(reference))
        return {
            "rows": len(out),
            "max_abs_diff": float(np.abs(out - reference).max(initial=0.0)),
            "max_rel_diff": float((np.abs(out - reference) / scale).max(initial=0.0)),
        }
    same = reference.argmax(axis=1) == out.argmax(axis=1)
    return {
        "rows": len(out),
        "label_agreement": float(same.mean()) if len(same) else 1.0,
        "max_abs_diff": float(np.abs(out - reference).max(initial=0.0)),
    }
