"""ONNX Runtime's own exceptions come out as mlcycle's, from real sessions fed bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from mlcycle.batch._predict import ChunkPredictor
from mlcycle.errors import DataError, InferenceError, MlcycleError, NotFoundError, Overloaded
from mlcycle.registry import Predictor
from mlcycle.registry._ort import from_ort, ort_errors

SIGNATURE: dict[str, Any] = {
    "task": "regression",
    "inputs": [{"name": "x", "kind": "numeric"}],
    "outputs": [{"name": "value"}],
}


def _graph(*nodes: Any, inputs: list[Any] | None = None) -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])
    value = helper.make_tensor_value_info("value", TensorProto.FLOAT, ["n"])
    graph = helper.make_graph(list(nodes), "g", inputs or [x], [value])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


RELU = _graph(helper.make_node("Relu", ["x"], ["value"]))


def _session(onnx_bytes: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(
    ("feeds", "words"),
    [
        ({"x": np.zeros(3, np.float64)}, "Unexpected input data type"),
        ({"x": np.zeros((3, 1), np.float32)}, "Invalid rank for input: x"),
        ({"y": np.zeros(3, np.float32)}, "Required inputs (['x']) are missing"),
        ({"x": "abc"}, "Input must be"),
    ],
)
def test_inputs_the_graph_refuses_are_a_data_error(feeds: dict[str, Any], words: str) -> None:
    session = _session(RELU)
    with pytest.raises(DataError) as caught, ort_errors("relu@1"):
        session.run(None, feeds)
    message = str(caught.value)
    assert message.startswith("relu@1: ONNX Runtime refused the inputs: ") and words in message
    assert "[ONNXRuntimeError]" not in message  # ONNX Runtime's words, not its status prefix
    assert caught.value.__cause__ is not None  # the original stays attached


def test_a_kernel_that_fails_is_an_inference_error() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])
    shape = helper.make_tensor_value_info("shape", TensorProto.INT64, [1])
    reshape = _graph(helper.make_node("Reshape", ["x", "shape"], ["value"]), inputs=[x, shape])
    session = _session(reshape)
    with (
        pytest.raises(
            InferenceError, match=r"^reshape@2: ONNX Runtime failed while predicting: .*Reshape"
        ),
        ort_errors("reshape@2"),
    ):
        session.run(None, {"x": np.zeros(3, np.float32), "shape": np.array([4])})


@pytest.mark.parametrize(
    "model",
    [b"not a model", _graph(helper.make_node("NoSuchOp", ["x"], ["value"]))],
    ids=["garbage", "unknown-op"],
)
def test_a_model_onnx_runtime_cannot_load_is_an_inference_error(model: bytes) -> None:
    with pytest.raises(InferenceError, match=r"^m@3: ONNX Runtime cannot load the model: "):
        Predictor(model, SIGNATURE, name="m", version=3)


def test_the_predictor_and_the_batch_scorer_translate_what_validation_did_not_catch() -> None:
    predictor = Predictor(RELU, SIGNATURE, name="relu", version=1)
    assert predictor.predict({"x": [1.0, -2.0]}).values.tolist() == [1.0, 0.0]  # type: ignore[union-attr]
    with pytest.raises(DataError, match=r"^relu@1: .*Invalid rank for input: x"):
        predictor.run({"x": np.zeros((2, 1), np.float32)})
    with pytest.raises(DataError, match=r"^relu@1: .*Unexpected input data type"):
        ChunkPredictor(predictor)({"x": np.zeros(2, np.float64)}, 2)


def test_errors_that_are_not_onnx_runtimes_pass_unchanged() -> None:
    with pytest.raises(KeyError), ort_errors("m@1"):
        raise KeyError("x")
    with pytest.raises(NotFoundError), ort_errors("m@1"):
        raise NotFoundError("no such run")  # a LookupError, but mlcycle's already
    error = DataError("column 'x': expected float")
    assert from_ort(error, "m@1") is error  # a ValueError, but mlcycle's already


def test_overloaded_is_in_the_error_tree_and_still_served_from_mlcycle_serve() -> None:
    from mlcycle.serve import Overloaded as served

    assert served is Overloaded and issubclass(Overloaded, MlcycleError)
    assert Overloaded(0.5).retry_after == 0.5
