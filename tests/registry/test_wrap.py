"""A graph made elsewhere (one float matrix in) gets mlcycle's raw-column inputs and outputs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from mlcycle.errors import ConflictError, DataError
from mlcycle.registry._wrap import wrap_matrix_graph


@dataclass(frozen=True)
class Layout:
    numeric: tuple[str, ...] = ("a", "b")
    categorical: tuple[str, ...] = ("c",)
    vocabularies: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"c": ("x", "y")})
    booleans: tuple[str, ...] = ()
    image: str | None = None
    image_shape: tuple[int, ...] | None = None


RNG = np.random.default_rng(0)
W = RNG.normal(size=(3, 4)).astype(np.float32)
B = RNG.normal(size=4).astype(np.float32)


def _core(width: int = 3, outputs: int = 4, *, regression: bool = False, opset: int = 13) -> bytes:
    """X [N, width] -> softmax(X W + b) as "probs" (and an int64 "index"), or X w as [N, 1]."""
    w = W[:width, : (1 if regression else outputs)]
    b = B[: (1 if regression else outputs)]
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["XW"]),
        helper.make_node("Add", ["XW", "B"], ["Z"]),
    ]
    if regression:
        outs = [helper.make_tensor_value_info("Z", TensorProto.FLOAT, ["N", 1])]
    else:
        nodes += [
            helper.make_node("Softmax", ["Z"], ["probs"], axis=1),
            helper.make_node("ArgMax", ["Z"], ["index"], axis=1, keepdims=0),
        ]
        outs = [
            helper.make_tensor_value_info("index", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", outputs]),
        ]
    graph = helper.make_graph(
        nodes,
        "core",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", width])],
        outs,
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    data: bytes = model.SerializeToString()
    return data


def _matrix(a: list[float], b: list[float], c: list[str]) -> np.ndarray:
    codes = [{"x": 1.0, "y": 2.0}.get(v, 0.0) for v in c]
    return np.column_stack([a, b, codes]).astype(np.float32)


def test_raw_columns_reach_the_core_in_order_and_outputs_are_mlcycles() -> None:
    classes = ["p", "q", "r", "s"]
    graph = wrap_matrix_graph(_core(), Layout(), task="multiclass", classes=classes, output="probs")
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["a", "b", "c"]
    a, b, c = [0.5, -1.0, np.nan], [2.0, 0.0, 1.0], ["y", "unseen", ""]
    probabilities, label = session.run(
        ["probabilities", "label"],
        {
            "a": np.array(a, np.float32),
            "b": np.array(b, np.float32),
            "c": np.array(c, dtype=object),
        },
    )
    z = _matrix(a, b, c) @ W + B
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities[:2], expected[:2], rtol=1e-5)
    assert np.isnan(probabilities[2]).all()  # NaN reaches the core: it decides what missing means
    assert list(label[:2]) == [classes[i] for i in expected[:2].argmax(axis=1)]


def test_a_chosen_column_order_and_a_regression_core() -> None:
    graph = wrap_matrix_graph(
        _core(regression=True), Layout(), task="regression", classes=None, columns=["c", "a", "b"]
    )
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    (value,) = session.run(
        ["value"],
        {
            "a": np.array([1.0, 2.0], np.float32),
            "b": np.array([3.0, 4.0], np.float32),
            "c": np.array(["x", "y"], dtype=object),
        },
    )
    matrix = np.array([[1, 1, 3], [2, 2, 4]], np.float32)
    np.testing.assert_allclose(value, (matrix @ W[:, :1] + B[:1]).ravel(), rtol=1e-6)
    assert value.shape == (2,)


def test_the_probability_output_is_found_by_its_type() -> None:
    graph = wrap_matrix_graph(_core(), Layout(), task="multiclass", classes=list("pqrs"))
    model = onnx.load_model_from_string(graph)
    assert [o.name for o in model.graph.output] == ["probabilities", "label"]
    read = {name for node in model.graph.node for name in node.input}
    assert all(i.name in read for i in model.graph.initializer)  # no unused constant


@pytest.mark.parametrize(
    ("core", "kwargs", "message"),
    [
        (_core(width=5), {}, "takes 5 columns; the dataset has 3 feature columns"),
        (_core(outputs=3), {}, "has 3 columns; the dataset has 4 classes"),
        (b"not a graph at all", {}, "not an ONNX graph"),
        (_core(opset=8), {}, "opset is 8"),
        (_core(), {"columns": ["a", "b"]}, "exactly once"),
        (_core(), {"output": "nope"}, "no output 'nope'"),
    ],
)
def test_a_core_that_does_not_fit_is_refused_naming_why(
    core: bytes, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        wrap_matrix_graph(
            core,
            Layout(),
            task="multiclass",
            classes=list("pqrs"),
            **({"output": "probs"} | kwargs),  # type: ignore[arg-type]
        )


def test_a_column_named_like_an_output_is_refused() -> None:
    layout = Layout(numeric=("a", "label"))
    with pytest.raises(ConflictError, match="'label'"):
        wrap_matrix_graph(_core(), layout, task="multiclass", classes=list("pqrs"))
