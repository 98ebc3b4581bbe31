"""Compression: smaller, faster variants of a registered version, measured on this machine.

Quantization with ONNX Runtime's tools (dynamic int8, static int8 in QDQ
with calibration, fp16), each variant measured against the original in one
run (test metrics with intervals, size, latency at batch 1 and at the
deployment batch size), kept only when it is faster and within the allowed
drop, and registered as a new version with lineage ``derived_from``.
Structured pruning (:func:`prune_run`) removes hidden neurons and conv
channels of the zoo's models, fine-tunes, and records a smaller child run.
"""

from __future__ import annotations

from mlcycle.compress._compress import METHODS, CompressionResult, compress
from mlcycle.compress._distill import DistillResult, distill
from mlcycle.compress._measure import Variant
from mlcycle.compress._prune import PruneOutcome, PruneStep, prune_model, prune_run

__all__ = [
    "METHODS",
    "CompressionResult",
    "DistillResult",
    "PruneOutcome",
    "PruneStep",
    "Variant",
    "compress",
    "distill",
    "prune_model",
    "prune_run",
]
