"""A graph made elsewhere with one input per raw column gets mlcycle's inputs and outputs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from mlcycle.errors import DataError
from mlcycle.registry._wrap import reorder_scores, wrap_column_graph


@dataclass(frozen=True)
class Layout:
    numeric: tuple[str, ...] = ("a", "b")
    categorical: tuple[str, ...] = ("c",)
    vocabularies: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"c": ("x", "y")})
    booleans: tuple[str, ...] = ()
    image: str | None = None
    image_shape: tuple[int, ...] | None = None


def _core(a_shape: list[object] | None = None, a_type: int = TensorProto.DOUBLE) -> bytes:
    """a (double [N, 1]), b (float [N, 1]), c (string [N, 1]) -> softmax([a, b + (c == 'y')])."""
    nodes = [
        helper.make_node("Cast", ["a"], ["a32"], to=TensorProto.FLOAT),
        helper.make_node("Equal", ["c", "y_const"], ["is_y"]),
        helper.make_node("Cast", ["is_y"], ["y32"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["b", "y32"], ["b_y"]),
        helper.make_node("Concat", ["a32", "b_y"], ["z"], axis=1),
        helper.make_node("Softmax", ["z"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "core",
        [
            helper.make_tensor_value_info("a", a_type, a_shape or ["N", 1]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("c", TensorProto.STRING, ["N", 1]),
        ],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 2])],
        initializer=[numpy_helper.from_array(np.array(["y"], dtype=object), "y_const")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    data: bytes = model.SerializeToString()
    return data


def _run(data: bytes, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))


def test_raw_columns_are_reshaped_and_cast_into_the_cores_inputs() -> None:
    data = wrap_column_graph(_core(), Layout(), task="binary", classes=["no", "yes"])
    graph = onnx.load_model_from_string(data).graph
    assert [(i.name, i.type.tensor_type.elem_type) for i in graph.input] == [
        ("a", TensorProto.FLOAT),
        ("b", TensorProto.FLOAT),
        ("c", TensorProto.STRING),
    ]
    a = np.array([0.0, 1.0, -1.0], dtype=np.float32)
    b = np.array([0.0, 0.0, 2.0], dtype=np.float32)
    c = np.array(["y", "x", ""], dtype=object)
    out = _run(data, {"a": a, "b": b, "c": c})
    z = np.column_stack([a, b + (c == "y")])
    expected = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-6)
    assert list(out["label"]) == ["yes", "no", "yes"]


def test_reordered_scores_follow_the_datasets_class_order() -> None:
    core = reorder_scores(_core(), None, [1, 0], task="binary")
    data = wrap_column_graph(core, Layout(), task="binary", classes=["yes", "no"])
    feeds = {
        "a": np.array([3.0], dtype=np.float32),
        "b": np.array([0.0], dtype=np.float32),
        "c": np.array(["x"], dtype=object),
    }
    out = _run(data, feeds)
    assert out["probabilities"][0, 1] > 0.9 and list(out["label"]) == ["no"]


def test_an_input_wider_than_one_column_is_refused() -> None:
    with pytest.raises(DataError, match=r"input 'a' \(column 'a'\) has shape \[\?, 3\]"):
        wrap_column_graph(_core(["N", 3]), Layout(), task="binary", classes=["no", "yes"])


def test_inputs_that_match_no_column_are_named_with_the_missing_ones() -> None:
    layout = Layout(numeric=("a", "d"))
    with pytest.raises(DataError) as error:
        wrap_column_graph(_core(), layout, task="binary", classes=["no", "yes"])
    assert str(error.value) == (
        "the graph's inputs do not match the dataset's feature columns: missing inputs for "
        "the columns ['d']; inputs ['b'] are no feature column of the dataset"
    )


def test_inputs_named_otherwise_are_mapped_to_their_columns() -> None:
    layout = Layout(numeric=("alpha", "b"))
    data = wrap_column_graph(
        _core(), layout, task="binary", classes=["no", "yes"], inputs={"a": "alpha"}
    )
    assert [i.name for i in onnx.load_model_from_string(data).graph.input] == ["alpha", "b", "c"]
    feeds = {
        "alpha": np.array([3.0], dtype=np.float32),
        "b": np.array([0.0], dtype=np.float32),
        "c": np.array(["x"], dtype=object),
    }
    assert list(_run(data, feeds)["label"]) == ["no"]
