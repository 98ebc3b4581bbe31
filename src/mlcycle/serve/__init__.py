"""Real-time serving: the Open Inference Protocol (KServe V2) and ``/predict`` over HTTP.

ONNX Runtime only: importing or running this package never imports torch.
"""

from __future__ import annotations

from mlcycle.serve._app import ServingApp, create_app
from mlcycle.serve._batcher import Batcher, Overloaded
from mlcycle.serve._deployment import Deployment, ServeSettings
from mlcycle.serve._run import run, serve_in_thread

__all__ = [
    "Batcher",
    "Deployment",
    "Overloaded",
    "ServeSettings",
    "ServingApp",
    "create_app",
    "run",
    "serve_in_thread",
]
