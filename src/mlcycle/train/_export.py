"""Export a trained network to ONNX that takes raw feature columns.

The PyTorch module already holds imputation, standardisation and the
categorical encoding (see ``train/_models.py``); it takes three matrices. The
exported graph takes one input per feature column instead, so that a caller
sends what is in its table:

* numeric columns: ``float32 [N]`` (NaN for missing: the graph imputes);
* boolean columns: ``float32 [N]`` of 0/1 (NaN for missing);
* categorical columns: ``string [N]`` (``""`` or any unseen value maps to the
  "missing or unseen" code through an ``ai.onnx.ml`` LabelEncoder);
* an image column: ``float32 [N, *shape]`` of raw pixels.

Outputs are ``probabilities`` ``float32 [N, K]`` and ``label`` ``string [N]``
for classification, ``value`` ``float32 [N]`` for regression. The batch axis
is dynamic.

Export lives with training because it needs torch; it returns the graph's
bytes, which registration checks (:mod:`~mlcycle.train._parity`) and the
registry stores.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import onnx
import torch
from onnx import TensorProto, helper

from mlcycle.data import MODEL_OUTPUTS
from mlcycle.errors import ConflictError
from mlcycle.train._features import FeatureLayout
from mlcycle.train._models import MlcycleNet

__all__ = ["OPSET", "export_module", "export_onnx"]

OPSET = 20
ML_OPSET = 3
_CORE = {"numeric": "_mlc_numeric", "categorical": "_mlc_categorical", "image": "_mlc_image"}
_OUTPUTS = MODEL_OUTPUTS  # data add refuses features named so; one list for both


class _Core(torch.nn.Module):
    """The network with its outputs in the units a caller wants."""

    def __init__(self, model: MlcycleNet, groups: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.groups = groups

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model.outputs(self.model(**dict(zip(self.groups, inputs, strict=True))))


class _Positional(torch.nn.Module):
    """Any module behind a ``forward(*inputs)``, the form the batch axes are declared for."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(*inputs)
        return out


def _export_core(model: MlcycleNet, layout: FeatureLayout) -> onnx.ModelProto:
    groups: list[str] = []
    examples: list[torch.Tensor] = []
    if layout.numeric:
        groups.append("numeric")
        examples.append(torch.zeros((2, len(layout.numeric)), dtype=torch.float32))
    if layout.categorical:
        groups.append("categorical")
        examples.append(torch.zeros((2, len(layout.categorical)), dtype=torch.int64))
    if layout.image is not None:
        assert layout.image_shape is not None
        groups.append("image")
        examples.append(torch.zeros((2, *layout.image_shape), dtype=torch.float32))
    core = _Core(model.cpu().eval(), tuple(groups))
    return export_module(core, tuple(examples), [_CORE[g] for g in groups], ["_mlc_out"])


def export_module(
    module: torch.nn.Module,
    examples: tuple[torch.Tensor, ...],
    input_names: list[str],
    output_names: list[str],
) -> onnx.ModelProto:
    """``module`` as an ONNX graph (opset :data:`OPSET`) whose first axis is a dynamic batch.

    The one place torch's exporter is called, with its settings: the
    network's own graph here, and a module trained elsewhere that
    registration imports (:mod:`mlcycle.workflow._import`).
    """
    batch = torch.export.Dim.DYNAMIC
    with warnings.catch_warnings():
        # torch's exporter warns about its own internals; nothing a user can act on.
        warnings.simplefilter("ignore")
        quiet = logging.getLogger("torch.onnx")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            program = torch.onnx.export(
                _Positional(module),
                examples,
                dynamo=True,
                input_names=input_names,
                output_names=output_names,
                dynamic_shapes=(tuple({0: batch} for _ in examples),),
                external_data=False,
                opset_version=OPSET,
                optimize=True,
                verbose=False,
            )
        finally:
            quiet.setLevel(level)
    assert program is not None
    proto: onnx.ModelProto = program.model_proto
    for node in proto.graph.node:
        # The exporter records the training code's stack trace and module path on every
        # node: kilobytes per layer that say where the model was trained, not what it does.
        del node.metadata_props[:]
        node.doc_string = ""
    return proto


def _value_info(name: str, elem: int, shape: list[Any]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def export_onnx(
    model: MlcycleNet, layout: FeatureLayout, classes: list[str] | None, task: str
) -> bytes:
    """The model as ONNX bytes with one input per raw feature column.

    Raises:
        ConflictError: a feature column is named like an output.
    """
    clash = [c for c in (*layout.numeric, *layout.categorical, layout.image) if c in _OUTPUTS]
    if clash:
        raise ConflictError(
            f"feature column {clash[0]!r} has the name of a model output; rename it"
        )
    proto = _export_core(model, layout)
    graph = proto.graph
    nodes: list[onnx.NodeProto] = []
    inputs: list[onnx.ValueInfoProto] = []

    def stack(columns: list[str], target: str) -> None:
        unsqueezed = []
        for column in columns:
            out = f"_mlc_col_{len(nodes)}"
            nodes.append(helper.make_node("Unsqueeze", [column, "_mlc_axis1"], [out]))
            unsqueezed.append(out)
        nodes.append(helper.make_node("Concat", unsqueezed, [target], axis=1))

    axis = helper.make_tensor("_mlc_axis1", TensorProto.INT64, [1], [1])
    if layout.numeric:
        for column in layout.numeric:
            inputs.append(_value_info(column, TensorProto.FLOAT, ["batch"]))
        stack(list(layout.numeric), _CORE["numeric"])
    if layout.categorical:
        codes = []
        for column in layout.categorical:
            inputs.append(_value_info(column, TensorProto.STRING, ["batch"]))
            vocabulary = list(layout.vocabularies[column])
            out = f"_mlc_code_{column}"
            nodes.append(
                helper.make_node(
                    "LabelEncoder",
                    [column],
                    [out],
                    domain="ai.onnx.ml",
                    keys_strings=vocabulary or ["\x00"],
                    values_int64s=list(range(1, len(vocabulary) + 1)) or [0],
                    default_int64=0,
                )
            )
            codes.append(out)
        stack(codes, _CORE["categorical"])
    if layout.image is not None:
        assert layout.image_shape is not None
        inputs.append(_value_info(layout.image, TensorProto.FLOAT, ["batch", *layout.image_shape]))
        nodes.append(helper.make_node("Identity", [layout.image], [_CORE["image"]]))

    outputs: list[onnx.ValueInfoProto] = []
    tail: list[onnx.NodeProto] = []
    if task == "regression":
        tail.append(helper.make_node("Identity", ["_mlc_out"], ["value"]))
        outputs.append(_value_info("value", TensorProto.FLOAT, ["batch"]))
    else:
        assert classes is not None
        tail.append(helper.make_node("Identity", ["_mlc_out"], ["probabilities"]))
        tail.append(helper.make_node("ArgMax", ["_mlc_out"], ["_mlc_index"], axis=1, keepdims=0))
        tail.append(
            helper.make_node(
                "LabelEncoder",
                ["_mlc_index"],
                ["label"],
                domain="ai.onnx.ml",
                keys_int64s=list(range(len(classes))),
                values_strings=list(classes),
                default_string="",
            )
        )
        outputs.append(_value_info("probabilities", TensorProto.FLOAT, ["batch", len(classes)]))
        outputs.append(_value_info("label", TensorProto.STRING, ["batch"]))

    new_graph = helper.make_graph(
        [*nodes, *graph.node, *tail],
        "mlcycle",
        inputs,
        outputs,
        initializer=[axis, *graph.initializer]
        if layout.numeric or layout.categorical
        else list(graph.initializer),
        value_info=list(graph.value_info),
    )
    opsets = {o.domain: o.version for o in proto.opset_import}
    opsets[""] = max(opsets.get("", OPSET), OPSET)
    opsets["ai.onnx.ml"] = ML_OPSET
    model_proto = helper.make_model(
        new_graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())],
        producer_name="mlcycle",
        ir_version=proto.ir_version,
    )
    model_proto.functions.extend(proto.functions)
    onnx.checker.check_model(model_proto, full_check=True)
    data: bytes = model_proto.SerializeToString()
    return data
