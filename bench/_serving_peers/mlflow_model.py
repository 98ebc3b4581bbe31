"""An MLflow pyfunc model wrapping the ONNX graph, served by ``mlflow models serve``.

``bench/serving.py`` builds it in MLflow's own venv::

    python mlflow_model.py MODEL.onnx OUT_DIR

then serves ``OUT_DIR`` with ``mlflow models serve -m OUT_DIR --env-manager local
-w 1``. Requests use MLflow's tensor format, ``{"inputs": {"f0": [0.1], ...}}``;
the model gets a dict of numpy arrays.
"""

from __future__ import annotations

import sys

import mlflow.pyfunc
import numpy as np


class OnnxPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context):  # type: ignore[no-untyped-def]
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            context.artifacts["onnx"], options, providers=["CPUExecutionProvider"]
        )
        self.names = [o.name for o in self.session.get_outputs()]

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        if hasattr(model_input, "to_dict"):  # a DataFrame: one column per input
            model_input = {c: model_input[c].to_numpy() for c in model_input.columns}
        feeds = {k: np.asarray(v, dtype=np.float32) for k, v in model_input.items()}
        outputs = self.session.run(self.names, feeds)
        return {name: arr.tolist() for name, arr in zip(self.names, outputs, strict=True)}


if __name__ == "__main__":
    mlflow.pyfunc.save_model(
        sys.argv[2], python_model=OnnxPyfunc(), artifacts={"onnx": sys.argv[1]}
    )
