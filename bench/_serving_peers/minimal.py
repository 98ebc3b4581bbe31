"""The minimal handler: FastAPI + ONNX Runtime, nothing else (the bench's ceiling).

Parses the same KServe V2 body mlcycle takes, builds the feeds with numpy,
runs the session, answers V2 JSON. No validation, logging or metrics.
Run by ``bench/serving.py`` in its own venv::

    python minimal.py MODEL.onnx PORT
"""

from __future__ import annotations

import sys

import numpy as np
import onnxruntime as ort
import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

model_path, port = sys.argv[1], int(sys.argv[2])
options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
names = [o.name for o in session.get_outputs()]
app = FastAPI()


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request) -> Response:
    body = orjson.loads(await request.body())
    feeds = {
        t["name"]: np.asarray(t["data"], dtype=np.float32).reshape(t["shape"])
        for t in body["inputs"]
    }
    outputs = []
    for out, arr in zip(names, session.run(names, feeds), strict=True):
        string = arr.dtype == object
        outputs.append(
            {
                "name": out,
                "shape": list(arr.shape),
                "datatype": "BYTES" if string else "FP32",
                "data": arr.ravel().tolist(),
            }
        )
    return Response(
        orjson.dumps({"model_name": name, "outputs": outputs}), media_type="application/json"
    )


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
