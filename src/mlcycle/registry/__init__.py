"""The model registry: versions with lineage and aliases, verified ONNX, safe loading.

Importing this package (and loading a model) never imports torch; only
:func:`register`, which exports a PyTorch module, does, and only when called.
"""

from __future__ import annotations

from mlcycle.registry._card import describe_parity
from mlcycle.registry._inputs import Feeds, FeedsPlan, to_feeds
from mlcycle.registry._load import load
from mlcycle.registry._predictor import Prediction, Predictor
from mlcycle.registry._register import check_parity, register
from mlcycle.registry._signature import make_signature
from mlcycle.store import ModelRecord, ModelVersionRecord, parse_model_ref

__all__ = [
    "Feeds",
    "FeedsPlan",
    "ModelRecord",
    "ModelVersionRecord",
    "Prediction",
    "Predictor",
    "check_parity",
    "describe_parity",
    "load",
    "make_signature",
    "parse_model_ref",
    "register",
    "to_feeds",
]
