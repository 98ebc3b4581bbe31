"""Put mlcycle's raw-column inputs and named outputs around a graph made elsewhere.

A gradient-boosted model converted by onnxmltools, a scikit-learn model
converted by skl2onnx or a user's PyTorch module exported by
``torch.onnx`` takes one ``float [N, F]`` matrix and answers with outputs
named as its converter chose. Everything downstream of the registry (the
predictor, the server, the batch scorer, the edge bundle, monitoring) speaks
mlcycle's graph contract instead (see :mod:`mlcycle.train._export`): one
input per raw column, ``probabilities`` ``float32 [N, K]`` and ``label``
``string [N]`` for classification, ``value`` ``float32 [N]`` for regression.
:func:`wrap_matrix_graph` makes the one out of the other, inside the graph:

* numeric and boolean columns, ``float32 [N]``, become one matrix column each
  (NaN stays NaN: the core decides what missing means);
* categorical columns, ``string [N]``, become their codes as floats through an
  ``ai.onnx.ml`` LabelEncoder (code ``i + 1`` is the ``i``-th training
  category, ``0`` is missing or unseen: :class:`mlcycle.train.FeatureLayout`'s
  coding);
* the core's probabilities become ``probabilities``, their argmax mapped to
  the class names becomes ``label``; a regression core's ``[N]`` or ``[N, 1]``
  answer becomes ``value``.

Every name of the core is prefixed, so a column may be called as the core's
input was. Only operators every default-domain opset since 9 defines the same
way are added (Reshape, Concat, Cast, ArgMax, Identity), so the core keeps the
opset it was converted with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import onnx
from onnx import TensorProto, compose, helper

from mlcycle.errors import ConflictError, DataError
from mlcycle.registry._signature import InputLayout

__all__ = [
    "CORE_PREFIX",
    "matrix_columns",
    "reorder_scores",
    "wrap_column_graph",
    "wrap_matrix_graph",
]

CORE_PREFIX = "_mlc_core/"
_ML_OPSET = 2  # LabelEncoder with string keys and int64 values (ai.onnx.ml 2)
_MIN_OPSET = 9
_OUTPUT_NAMES = ("probabilities", "label", "value")


def matrix_columns(layout: InputLayout) -> list[str]:
    """The order of the matrix's columns: numeric (and boolean) columns, then categorical ones."""
    return [*layout.numeric, *layout.categorical]


def _load(core: bytes | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(core, onnx.ModelProto):
        return core
    try:
        return onnx.load_model_from_string(core)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise DataError(f"the model's bytes are not an ONNX graph: {exc}") from None


def _elem_type(value: onnx.ValueInfoProto) -> int:
    return int(value.type.tensor_type.elem_type)


def _rank(value: onnx.ValueInfoProto) -> int | None:
    tensor = value.type.tensor_type
    return len(tensor.shape.dim) if tensor.HasField("shape") else None


def _pick_input(graph: onnx.GraphProto, name: str | None) -> onnx.ValueInfoProto:
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if name is not None:
        chosen = [i for i in inputs if i.name == name]
        if not chosen:
            raise DataError(
                f"matrix_input: the graph has no input {name!r}; "
                f"its inputs are {[i.name for i in inputs]}"
            )
        found: onnx.ValueInfoProto = chosen[0]
        return found
    if len(inputs) != 1:
        raise DataError(
            f"the graph takes {len(inputs)} inputs {[i.name for i in inputs]}; "
            "expected one float tensor [N, F]"
        )
    only: onnx.ValueInfoProto = inputs[0]
    return only


def _pick_output(graph: onnx.GraphProto, name: str | None, task: str) -> onnx.ValueInfoProto:
    outputs = list(graph.output)
    if name is not None:
        chosen = [o for o in outputs if o.name == name]
        if not chosen:
            raise DataError(
                f"the graph has no output {name!r}; its outputs are {[o.name for o in outputs]}"
            )
        named: onnx.ValueInfoProto = chosen[0]
        return named
    floats = [o for o in outputs if _elem_type(o) in (TensorProto.FLOAT, TensorProto.DOUBLE)]
    if task != "regression":
        floats = [o for o in floats if _rank(o) == 2] or floats
    if len(floats) != 1:
        what = "probabilities [N, K]" if task != "regression" else "values [N] or [N, 1]"
        raise DataError(
            f"cannot tell which output holds the {what}: the graph's float outputs are "
            f"{[o.name for o in floats]} (of {[o.name for o in outputs]}); name it"
        )
    scores: onnx.ValueInfoProto = floats[0]
    return scores


def _scores_output(
    graph: onnx.GraphProto, output: str | None, task: str, classes: Sequence[str] | None
) -> onnx.ValueInfoProto:
    """The output holding the scores, checked against the dataset's number of classes."""
    scores = _pick_output(graph, output, task)
    n_classes = _width(scores)
    if task != "regression":
        assert classes is not None
        if n_classes is not None and n_classes != len(classes):
            raise DataError(
                f"output {scores.name!r} has {n_classes} columns; the dataset has "
                f"{len(classes)} classes {list(classes)}"
            )
    return scores


def _width(value: onnx.ValueInfoProto) -> int | None:
    dims = value.type.tensor_type.shape.dim
    if len(dims) != 2 or not dims[1].HasField("dim_value"):
        return None
    return int(dims[1].dim_value)


def wrap_matrix_graph(
    core: bytes | onnx.ModelProto,
    layout: InputLayout,
    *,
    task: str,
    classes: Sequence[str] | None,
    matrix_input: str | None = None,
    output: str | None = None,
    columns: Sequence[str] | None = None,
    producer: str = "mlcycle",
) -> bytes:
    """``core`` (one float matrix in, scores out) as a graph of mlcycle's contract.

    Args:
        core: the converted model, bytes or a ModelProto; its one input (or
            ``matrix_input``) is a float ``[N, F]`` matrix.
        layout: the raw columns (numeric, boolean, categorical with their
            training vocabularies); an image column is refused.
        task: ``binary``, ``multiclass`` or ``regression``.
        classes: the class names in the order of the core's probability columns.
        output: the core's output holding probabilities (``[N, K]``) or values
            (``[N]`` / ``[N, 1]``); found by its type when there is one candidate.
        columns: the matrix's column order; :func:`matrix_columns` by default.
            Every layout column appears exactly once.

    Returns:
        The serialized graph, checked by ``onnx.checker``.

    Raises:
        DataError: the core is not ONNX, has no single matrix input, its width
            or number of classes disagrees with the columns and classes, or
            its outputs cannot be told apart.
        ConflictError: a column is named like one of mlcycle's outputs.
    """
    proto = _load(core)
    if layout.image is not None:
        raise DataError(
            f"column {layout.image!r} is an image: a matrix graph takes numeric and "
            "categorical columns only"
        )
    order = list(columns) if columns is not None else matrix_columns(layout)
    known = matrix_columns(layout)
    if sorted(order) != sorted(known) or len(set(order)) != len(order):
        raise DataError(
            f"columns {order}: expected each of the feature columns {known} exactly once"
        )
    clash = [c for c in order if c in _OUTPUT_NAMES]
    if clash:
        raise ConflictError(
            f"feature column {clash[0]!r} has the name of a model output; rename it"
        )
    default_opset = max(
        (o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0
    )
    if default_opset < _MIN_OPSET:
        raise DataError(
            f"the graph's opset is {default_opset}: mlcycle takes opset {_MIN_OPSET} or later"
        )
    graph = proto.graph
    matrix = _pick_input(graph, matrix_input)
    if _elem_type(matrix) != TensorProto.FLOAT or _rank(matrix) not in (None, 2):
        raise DataError(
            f"input {matrix.name!r}: expected a float tensor [N, F], found "
            f"{TensorProto.DataType.Name(_elem_type(matrix))} of rank {_rank(matrix)}"
        )
    width = _width(matrix)
    if width is not None and width != len(order):
        raise DataError(
            f"input {matrix.name!r} takes {width} columns; the dataset has {len(order)} "
            f"feature columns {order}"
        )
    scores = _scores_output(graph, output, task, classes)

    prefixed = compose.add_prefix(proto, CORE_PREFIX)
    matrix_name, scores_name = CORE_PREFIX + matrix.name, CORE_PREFIX + scores.name
    categorical = set(layout.categorical)
    nodes: list[onnx.NodeProto] = []
    inputs: list[onnx.ValueInfoProto] = []
    pieces: list[str] = []
    constants = [
        helper.make_tensor("_mlc_column_shape", TensorProto.INT64, [2], [-1, 1]),
        helper.make_tensor("_mlc_flat_shape", TensorProto.INT64, [1], [-1]),
    ]
    for i, column in enumerate(order):
        if column in categorical:
            inputs.append(helper.make_tensor_value_info(column, TensorProto.STRING, ["batch"]))
            vocabulary = list(layout.vocabularies[column])
            nodes.append(
                helper.make_node(
                    "LabelEncoder",
                    [column],
                    [f"_mlc_code_{i}"],
                    domain="ai.onnx.ml",
                    keys_strings=vocabulary or ["\x00"],
                    values_int64s=list(range(1, len(vocabulary) + 1)) or [0],
                    default_int64=0,
                )
            )
            nodes.append(
                helper.make_node(
                    "Cast", [f"_mlc_code_{i}"], [f"_mlc_value_{i}"], to=TensorProto.FLOAT
                )
            )
            source = f"_mlc_value_{i}"
        else:
            inputs.append(helper.make_tensor_value_info(column, TensorProto.FLOAT, ["batch"]))
            source = column
        nodes.append(helper.make_node("Reshape", [source, "_mlc_column_shape"], [f"_mlc_col_{i}"]))
        pieces.append(f"_mlc_col_{i}")
    nodes.append(helper.make_node("Concat", pieces, [matrix_name], axis=1))

    return _assemble(prefixed, nodes, inputs, constants, scores_name, task, classes, producer)


_NUMBER_TYPES = {
    TensorProto.FLOAT: "float",
    TensorProto.DOUBLE: "double",
    TensorProto.INT64: "int64",
    TensorProto.INT32: "int32",
}


def _identifier(name: str) -> str:
    """A column name as converters spell an input after it (skl2onnx: ``mean radius`` → ``mean_radius``)."""
    return re.sub(r"\W", "_", name)


def _shape_text(value: onnx.ValueInfoProto) -> str:
    dims = value.type.tensor_type.shape.dim
    return "[" + ", ".join(str(d.dim_value) if d.HasField("dim_value") else "?" for d in dims) + "]"


def wrap_column_graph(
    core: bytes | onnx.ModelProto,
    layout: InputLayout,
    *,
    task: str,
    classes: Sequence[str] | None,
    inputs: Mapping[str, str] | None = None,
    output: str | None = None,
    producer: str = "mlcycle",
) -> bytes:
    """``core`` (one input per raw column) as a graph of mlcycle's contract.

    A scikit-learn pipeline converted by skl2onnx over a DataFrame takes
    each column as ``[N, 1]`` (``float`` or ``string``); mlcycle's graphs take
    ``[N]``. Each raw column is reshaped (and cast to the core's number type)
    on the way in; the outputs are made as :func:`wrap_matrix_graph` makes
    them.

    Args:
        core: the converted model; every input is one column, ``[N]`` or ``[N, 1]``.
        layout: the dataset's feature columns; an image column is refused.
        task, classes, output, producer: as for :func:`wrap_matrix_graph`.
        inputs: core input → column, where the names differ; by default an
            input is the column of its name (or the column a converter named
            it after, spaces as ``_``).

    Raises:
        DataError: the inputs and the columns disagree (naming the missing
            columns, the extra inputs and those of the wrong type), an input
            has a shape that is not one column, or the outputs cannot be
            told apart or have another number of classes.
        ConflictError: a column is named like one of mlcycle's outputs.
    """
    proto = _load(core)
    if layout.image is not None:
        raise DataError(f"column {layout.image!r} is an image: imported graphs take table columns")
    columns = [*layout.numeric, *layout.categorical]
    clash = [c for c in columns if c in _OUTPUT_NAMES]
    if clash:
        raise ConflictError(
            f"feature column {clash[0]!r} has the name of a model output; rename it"
        )
    graph = proto.graph
    initializers = {i.name for i in graph.initializer}
    graph_inputs = [i for i in graph.input if i.name not in initializers]
    by_name = {c: c for c in columns} | {
        _identifier(c): c for c in columns if _identifier(c) not in columns
    }
    chosen = dict(inputs or {})
    categorical = set(layout.categorical)
    mapped: dict[str, onnx.ValueInfoProto] = {}
    extra: list[str] = []
    wrong: list[str] = []
    for value in graph_inputs:
        column = chosen.get(value.name) or by_name.get(value.name)
        if column is None or column in mapped:
            extra.append(value.name)
            continue
        elem = _elem_type(value)
        if column in categorical and elem != TensorProto.STRING:
            wrong.append(f"{column!r} is categorical but the graph takes {_type_name(elem)}")
        elif column not in categorical and elem not in _NUMBER_TYPES:
            wrong.append(f"{column!r} is numeric but the graph takes {_type_name(elem)}")
        mapped[column] = value
    missing = [c for c in columns if c not in mapped]
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing inputs for the columns {missing}")
        if extra:
            parts.append(f"inputs {extra} are no feature column of the dataset")
        if wrong:
            parts.append("; ".join(wrong))
        raise DataError(
            "the graph's inputs do not match the dataset's feature columns: " + "; ".join(parts)
        )
    for column, value in mapped.items():
        dims = value.type.tensor_type.shape.dim
        flat = len(dims) == 1 or (
            len(dims) == 2 and dims[1].HasField("dim_value") and dims[1].dim_value == 1
        )
        if not flat:
            raise DataError(
                f"input {value.name!r} (column {column!r}) has shape {_shape_text(value)}: "
                "mlcycle maps one column to [N] or [N, 1], not to this shape"
            )
    scores = _scores_output(graph, output, task, classes)

    prefixed = compose.add_prefix(proto, CORE_PREFIX)
    nodes: list[onnx.NodeProto] = []
    new_inputs: list[onnx.ValueInfoProto] = []
    constants = [
        helper.make_tensor("_mlc_column_shape", TensorProto.INT64, [2], [-1, 1]),
        helper.make_tensor("_mlc_flat_shape", TensorProto.INT64, [1], [-1]),
    ]
    for i, column in enumerate(columns):
        value = mapped[column]
        elem = _elem_type(value)
        target = CORE_PREFIX + value.name
        if column in categorical:
            new_inputs.append(helper.make_tensor_value_info(column, TensorProto.STRING, ["batch"]))
            source = column
        else:
            new_inputs.append(helper.make_tensor_value_info(column, TensorProto.FLOAT, ["batch"]))
            source = column
            if elem != TensorProto.FLOAT:
                nodes.append(helper.make_node("Cast", [column], [f"_mlc_cast_{i}"], to=elem))
                source = f"_mlc_cast_{i}"
        shape = (
            "_mlc_column_shape" if len(value.type.tensor_type.shape.dim) == 2 else "_mlc_flat_shape"
        )
        nodes.append(helper.make_node("Reshape", [source, shape], [target]))
    return _assemble(
        prefixed, nodes, new_inputs, constants, CORE_PREFIX + scores.name, task, classes, producer
    )


def reorder_scores(
    core: bytes | onnx.ModelProto, output: str | None, order: Sequence[int], *, task: str
) -> onnx.ModelProto:
    """``core`` whose probability output holds its columns in ``order`` (``new[:, j] = old[:, order[j]]``).

    A converted classifier answers in its own class order (scikit-learn's
    ``classes_``); mlcycle's ``probabilities`` follow the dataset's. The
    reordered scores are the graph's only output, ``_mlc_ordered``.
    """
    proto = onnx.ModelProto()
    proto.CopyFrom(_load(core))
    scores = _pick_output(proto.graph, output, task)
    indices = helper.make_tensor("_mlc_order", TensorProto.INT64, [len(order)], list(order))
    proto.graph.initializer.append(indices)
    proto.graph.node.append(
        helper.make_node("Gather", [scores.name, "_mlc_order"], ["_mlc_ordered"], axis=1)
    )
    elem = _elem_type(scores)
    del proto.graph.output[:]
    proto.graph.output.append(
        helper.make_tensor_value_info("_mlc_ordered", elem, ["N", len(order)])
    )
    return proto


def _type_name(elem: int) -> str:
    return "a tensor of unknown type" if elem == 0 else TensorProto.DataType.Name(elem).lower()


def _assemble(
    prefixed: onnx.ModelProto,
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    constants: list[onnx.TensorProto],
    scores_name: str,
    task: str,
    classes: Sequence[str] | None,
    producer: str,
) -> bytes:
    """The front ``nodes``, the prefixed core, and mlcycle's outputs made from ``scores_name``.

    Raises:
        DataError: the result is not valid ONNX.
    """
    core_graph = prefixed.graph
    tail: list[onnx.NodeProto] = []
    outputs: list[onnx.ValueInfoProto] = []
    as_float = "_mlc_scores"
    tail.append(helper.make_node("Cast", [scores_name], [as_float], to=TensorProto.FLOAT))
    if task == "regression":
        tail.append(helper.make_node("Reshape", [as_float, "_mlc_flat_shape"], ["value"]))
        outputs.append(helper.make_tensor_value_info("value", TensorProto.FLOAT, ["batch"]))
    else:
        assert classes is not None
        # Trees sum float32 leaf values: a probability may come out as 1.0000001, which
        # evaluation (and the gate) refuse; clipped into [0, 1] here, once for every path.
        constants = [
            *constants,
            helper.make_tensor("_mlc_zero", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor("_mlc_one", TensorProto.FLOAT, [], [1.0]),
        ]
        tail.append(helper.make_node("Min", [as_float, "_mlc_one"], ["_mlc_at_most_one"]))
        tail.append(helper.make_node("Max", ["_mlc_at_most_one", "_mlc_zero"], ["probabilities"]))
        tail.append(helper.make_node("ArgMax", [as_float], ["_mlc_index"], axis=1, keepdims=0))
        tail.append(
            helper.make_node(
                "LabelEncoder",
                ["_mlc_index"],
                ["label"],
                domain="ai.onnx.ml",
                keys_int64s=list(range(len(classes))),
                values_strings=[str(c) for c in classes],
                default_string="",
            )
        )
        outputs.append(
            helper.make_tensor_value_info(
                "probabilities", TensorProto.FLOAT, ["batch", len(classes)]
            )
        )
        outputs.append(helper.make_tensor_value_info("label", TensorProto.STRING, ["batch"]))

    initializers = {i.name for i in core_graph.initializer}
    kept_inputs = [i for i in core_graph.input if i.name in initializers]  # IR < 4 style
    used = {name for node in (*nodes, *tail) for name in node.input}
    # a constant no node reads would make ONNX Runtime warn at every load
    constants = [c for c in constants if c.name in used]
    wrapped = helper.make_graph(
        [*nodes, *core_graph.node, *tail],
        "mlcycle",
        [*inputs, *kept_inputs],
        outputs,
        initializer=[*constants, *core_graph.initializer],
        sparse_initializer=list(core_graph.sparse_initializer),
        value_info=list(core_graph.value_info),
    )
    opsets = {o.domain or "": o.version for o in prefixed.opset_import}
    opsets["ai.onnx.ml"] = max(opsets.get("ai.onnx.ml", 0), _ML_OPSET)
    model = helper.make_model(
        wrapped,
        opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())],
        producer_name=producer,
        ir_version=max(prefixed.ir_version, 7),
    )
    model.functions.extend(prefixed.functions)
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise DataError(
            f"the wrapped graph is not valid ONNX: {str(exc).splitlines()[0]}"
        ) from None
    data: bytes = model.SerializeToString()
    return data
