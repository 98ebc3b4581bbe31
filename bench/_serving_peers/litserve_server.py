"""LitServe around the ONNX graph (batching off: ``max_batch_size=1``).

Takes the same KServe V2 body as the minimal handler. Run by
``bench/serving.py`` in its own venv::

    python litserve_server.py MODEL.onnx PORT
"""

from __future__ import annotations

import sys

import litserve as ls
import numpy as np

model_path, port = sys.argv[1], int(sys.argv[2])


class OnnxAPI(ls.LitAPI):
    def setup(self, device):  # type: ignore[no-untyped-def]
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
        self.names = [o.name for o in self.session.get_outputs()]

    def decode_request(self, request):  # type: ignore[no-untyped-def]
        return {
            t["name"]: np.asarray(t["data"], dtype=np.float32).reshape(t["shape"])
            for t in request["inputs"]
        }

    def predict(self, feeds):  # type: ignore[no-untyped-def]
        return self.session.run(self.names, feeds)

    def encode_response(self, outputs):  # type: ignore[no-untyped-def]
        return {
            "outputs": [
                {"name": n, "shape": list(a.shape), "data": a.ravel().tolist()}
                for n, a in zip(self.names, outputs, strict=True)
            ]
        }


if __name__ == "__main__":
    server = ls.LitServer(OnnxAPI(), accelerator="cpu", workers_per_device=1, timeout=30)
    server.run(port=port, num_api_servers=1, generate_client_file=False)
