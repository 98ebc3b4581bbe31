"""KServe's Python model server (V2 route) around the ONNX graph.

Run by ``bench/serving.py`` in its own venv::

    python kserve_server.py MODEL.onnx PORT
"""

from __future__ import annotations

import sys
import uuid

import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer

model_path, port = sys.argv[1], int(sys.argv[2])


class OnnxModel(Model):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
        self.names = [o.name for o in self.session.get_outputs()]
        self.ready = True

    def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        feeds = {i.name: i.as_numpy().astype(np.float32, copy=False) for i in payload.inputs}
        outputs = []
        for name, arr in zip(self.names, self.session.run(self.names, feeds), strict=True):
            string = arr.dtype == object
            out = InferOutput(
                name=name, shape=list(arr.shape), datatype="BYTES" if string else "FP32"
            )
            out.set_data_from_numpy(arr.astype(object if string else np.float32), binary_data=False)
            outputs.append(out)
        # KServe answers 500 when the id is None (pydantic wants a string): make one.
        return InferResponse(
            response_id=payload.id or uuid.uuid4().hex, model_name=self.name, infer_outputs=outputs
        )


if __name__ == "__main__":
    ModelServer(http_port=port, grpc_port=port + 1, workers=1, enable_grpc=False).start(
        [OnnxModel("m")]
    )
