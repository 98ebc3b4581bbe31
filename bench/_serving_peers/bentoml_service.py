"""A BentoML service around the ONNX graph (one worker, adaptive batching off).

Takes the same KServe V2 body as the minimal handler: BentoML maps the JSON
key ``inputs`` to the API's ``inputs`` argument. ``bench/serving.py`` serves it
from its own venv with ``bentoml serve bentoml_service:OnnxService --port P``;
the model path comes in ``BENCH_ONNX``.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
import numpy as np


@bentoml.service(workers=1, traffic={"timeout": 30})
class OnnxService:
    def __init__(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            os.environ["BENCH_ONNX"], options, providers=["CPUExecutionProvider"]
        )
        self.names = [o.name for o in self.session.get_outputs()]

    @bentoml.api
    def infer(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        feeds = {
            t["name"]: np.asarray(t["data"], dtype=np.float32).reshape(t["shape"]) for t in inputs
        }
        outputs = self.session.run(self.names, feeds)
        return {
            "outputs": [
                {"name": n, "shape": list(a.shape), "data": a.ravel().tolist()}
                for n, a in zip(self.names, outputs, strict=True)
            ]
        }
