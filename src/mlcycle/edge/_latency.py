"""Load a model once on ONNX Runtime: check it against its signature and time one row.

Building a bundle runs the model before writing anything, so a graph that
ONNX Runtime cannot load, or whose inputs differ from the signature, is
refused instead of shipped, and the bundle records what one row costs.
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle.errors import ConflictError

if TYPE_CHECKING:
    import onnxruntime as ort

__all__ = ["load_session", "measure_latency_ms", "sample_feeds"]

WARMUP_RUNS = 20
TIMED_RUNS = 200


def sample_feeds(signature: dict[str, Any]) -> dict[str, np.ndarray[Any, Any]]:
    """One realistic row: mid-range numbers, booleans false, first category, blank image.

    >>> signature = {"inputs": [
    ...     {"name": "age", "kind": "numeric", "range": [20.0, 60.0]},
    ...     {"name": "city", "kind": "categorical", "categories": ["lyon", "nice"]},
    ...     {"name": "image", "kind": "image", "shape": [-1, 2, 2]}]}
    >>> {name: array.tolist() for name, array in sample_feeds(signature).items()}
    {'age': [40.0], 'city': ['lyon'], 'image': [[[0.0, 0.0], [0.0, 0.0]]]}
    """
    feeds: dict[str, np.ndarray[Any, Any]] = {}
    for spec in signature["inputs"]:
        name, kind = spec["name"], spec["kind"]
        if kind == "numeric":
            low, high = spec.get("range") or (0.0, 0.0)
            feeds[name] = np.array([(low + high) / 2], dtype=np.float32)
        elif kind == "boolean":
            feeds[name] = np.zeros(1, dtype=np.float32)
        elif kind == "categorical":
            categories = spec.get("categories") or [""]
            feeds[name] = np.array([categories[0]], dtype=object)
        elif kind == "image":
            feeds[name] = np.zeros((1, *spec["shape"][1:]), dtype=np.float32)
        else:
            raise ConflictError(f"signature input {name!r} has unknown kind {kind!r}")
    return feeds


def load_session(model: bytes | str, signature: dict[str, Any]) -> ort.InferenceSession:
    """A one-thread CPU session on ``model``, whose inputs and outputs match ``signature``.

    Raises:
        InferenceError: ONNX Runtime cannot load the model.
        ConflictError: its inputs or outputs are not the ones the signature names.
    """
    import onnxruntime as ort

    from mlcycle.registry._ort import ort_errors

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    with ort_errors(f"ONNX Runtime {ort.__version__}", loading=True):
        session = ort.InferenceSession(
            model, sess_options=options, providers=["CPUExecutionProvider"]
        )
    graph_inputs = sorted(i.name for i in session.get_inputs())
    expected = sorted(spec["name"] for spec in signature["inputs"])
    if graph_inputs != expected:
        raise ConflictError(
            f"the model takes inputs {graph_inputs} but the signature names {expected}"
        )
    graph_outputs = {o.name for o in session.get_outputs()}
    missing = [o["name"] for o in signature["outputs"] if o["name"] not in graph_outputs]
    if missing:
        raise ConflictError(
            f"the signature names output {missing[0]!r}, which the model lacks "
            f"(it has {sorted(graph_outputs)})"
        )
    return session


def measure_latency_ms(session: ort.InferenceSession, signature: dict[str, Any]) -> float:
    """Median milliseconds to predict one row, after a warm-up.

    Raises:
        DataError: ONNX Runtime refuses the sample row.
        InferenceError: the model fails on the sample row.
    """
    from mlcycle.registry._ort import ort_errors

    feeds = sample_feeds(signature)
    outputs = [o["name"] for o in signature["outputs"]]
    with ort_errors(f"a sample row {feeds}"):
        for _ in range(WARMUP_RUNS):
            session.run(outputs, feeds)
    timings = []
    for _ in range(TIMED_RUNS):
        start = time.perf_counter_ns()
        session.run(outputs, feeds)
        timings.append(time.perf_counter_ns() - start)
    return statistics.median(timings) / 1e6
