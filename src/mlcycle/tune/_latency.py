"""What a trial's model costs to serve: its exported graph timed on ONNX Runtime.

A study that trades accuracy for speed needs the speed of what will be
deployed, not an estimate from FLOPs: the trial's network is exported to
ONNX exactly as registration exports it and run on one ORT thread (pinned,
so that parallel workers do not disturb each other's timings more than they
must) at the deployment batch size, on real validation rows.
"""

from __future__ import annotations

import statistics
import time

import pyarrow as pa

from mlcycle.registry import Predictor, make_signature
from mlcycle.train import FeatureLayout, GbmModel, MlcycleNet, export_gbm_onnx, export_onnx

__all__ = ["onnx_latency_ms"]

WARMUP = 5
MIN_RUNS = 15
BUDGET_S = 0.3


def onnx_latency_ms(
    model: MlcycleNet | GbmModel,
    layout: FeatureLayout,
    *,
    task: str,
    target: str,
    classes: list[str] | None,
    rows: pa.Table,
    batch: int,
) -> float:
    """Median milliseconds of one ORT call on ``batch`` rows (repeated rows when ``rows`` has fewer)."""
    if isinstance(model, GbmModel):
        onnx_bytes = export_gbm_onnx(model)
    else:
        onnx_bytes = export_onnx(model, layout, classes, task)
    signature = make_signature(layout, task=task, target=target, classes=classes, profile={})
    predictor = Predictor(onnx_bytes, signature, name="trial", threads=1)
    index = [i % max(rows.num_rows, 1) for i in range(batch)]
    feeds = predictor.feeds(rows.take(index))
    for _ in range(WARMUP):
        predictor.run(feeds)
    times: list[float] = []
    deadline = time.perf_counter() + BUDGET_S
    while len(times) < MIN_RUNS or time.perf_counter() < deadline:
        start = time.perf_counter()
        predictor.run(feeds)
        times.append((time.perf_counter() - start) * 1000)
        if len(times) >= 2000:
            break
    return float(statistics.median(times))
