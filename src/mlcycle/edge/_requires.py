"""Which ONNX Runtime a device needs to load a model, from the model's IR version and opsets.

ONNX Runtime refuses a model whose IR version is newer than it knows
("Unsupported model IR version: 10, max supported IR version: 9") and only
implements the opsets released before it. The tables hold the first release
that accepts each version; for anything newer than the tables know, the
bundle asks for the ONNX Runtime it was built and timed with, which is known
to work.
"""

from __future__ import annotations

__all__ = ["MIN_NUMPY", "required_onnxruntime"]

MIN_NUMPY = ">=1.24"
_FLOOR = (1, 16)
_BY_IR_VERSION = {9: (1, 15), 10: (1, 18)}
_BY_OPSET = {19: (1, 16), 20: (1, 17), 21: (1, 18)}
_BY_ML_OPSET = {3: (1, 9)}


def _running() -> tuple[int, int]:
    import onnxruntime

    major, minor = onnxruntime.__version__.split(".")[:2]
    return int(major), int(minor)


def _first(table: dict[int, tuple[int, int]], version: int) -> tuple[int, int]:
    if version > max(table):
        return _running()
    return max((release for known, release in table.items() if known <= version), default=_FLOOR)


def required_onnxruntime(onnx_bytes: bytes) -> str:
    """The pip specifier of the ONNX Runtime releases that load this model.

    >>> from onnx import TensorProto, helper
    >>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    >>> graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x],
    ...                           [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    >>> model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    >>> model.ir_version = 9
    >>> required_onnxruntime(model.SerializeToString())
    '>=1.17'
    """
    import onnx

    model = onnx.load_model_from_string(onnx_bytes)
    needs = [_FLOOR, _first(_BY_IR_VERSION, model.ir_version)]
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            needs.append(_first(_BY_OPSET, opset.version))
        elif opset.domain == "ai.onnx.ml":
            needs.append(_first(_BY_ML_OPSET, opset.version))
    major, minor = max(needs)
    return f">={major}.{minor}"
