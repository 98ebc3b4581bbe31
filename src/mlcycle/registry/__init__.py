"""The model registry: versions with lineage and aliases, verified ONNX, safe loading.

The registry stores a version from its bytes and metadata and loads it back
as an ONNX Runtime predictor (with its out-of-distribution detector, numpy
only); it imports no stage. Making a version out of a training run (export,
parity check, monitoring's reference) is a workflow:
:func:`mlcycle.workflow.register`. ``mlcycle.registry.register`` and
``mlcycle.registry.check_parity`` still name it and the parity check
(:mod:`mlcycle.train`), resolved on first use, so that importing this
package or loading a model never imports torch or a stage.
"""

from __future__ import annotations

import importlib
from typing import Any

from mlcycle.registry._card import describe_parity
from mlcycle.registry._inputs import Feeds, FeedsPlan, model_inputs, to_feeds
from mlcycle.registry._load import load
from mlcycle.registry._ood import OODDetector, OODScores
from mlcycle.registry._predictor import Prediction, Predictor
from mlcycle.registry._signature import make_signature
from mlcycle.store import ModelRecord, ModelVersionRecord, parse_model_ref

__all__ = [
    "Feeds",
    "FeedsPlan",
    "ModelRecord",
    "ModelVersionRecord",
    "OODDetector",
    "OODScores",
    "Prediction",
    "Predictor",
    "check_parity",
    "describe_parity",
    "load",
    "make_signature",
    "model_inputs",
    "parse_model_ref",
    "register",
    "to_feeds",
]

# Names kept for callers of earlier releases; they live in higher layers now. Looked up
# by module name, on first use: a static import would make the registry (and every
# server) depend on training.
_MOVED = {"register": "mlcycle.workflow", "check_parity": "mlcycle.train"}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'mlcycle.registry' has no attribute {name!r}")
