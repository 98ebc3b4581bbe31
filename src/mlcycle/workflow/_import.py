"""Register a model trained elsewhere: a torch module, a scikit-learn estimator, a booster, ONNX.

Everything after training (serving, batch scoring, edge bundles,
monitoring, the loop's gate) runs an ONNX graph of mlcycle's contract (see
:mod:`mlcycle.train._export`), so a model made outside mlcycle enters the
same lifecycle once it is one::

    model ─► ONNX (torch.onnx / skl2onnx / onnxmltools, or the bytes given)
          ─► inputs read from the graph, checked against the dataset version's schema
          ─► mlcycle's raw-column inputs and named outputs around it (registry._wrap)
          ─► parity against the native model's own answers on the test rows
          ─► test metrics with intervals (training's evaluation), reference, OOD, card

A graph takes either one input per raw column (a scikit-learn pipeline over
a DataFrame: ``[N, 1]`` each) or one float tensor ``[N, F]`` (a torch
module, a booster, an estimator fitted on a matrix): then the dataset's
feature columns feed it in schema order, which is said in a log line and
recorded in the lineage. A failed parity check registers nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import torch
from onnx import TensorProto

from mlcycle.data import Schema
from mlcycle.errors import DataError
from mlcycle.registry import Predictor
from mlcycle.registry._card import dataset_facts
from mlcycle.registry._wrap import reorder_scores, wrap_column_graph, wrap_matrix_graph
from mlcycle.store import check_alias, check_name
from mlcycle.train import (
    FeatureLayout,
    check_parity,
    encode,
    evaluate_outputs,
    export_module,
    fit_layout,
)
from mlcycle.workflow._register import dataset_signature, store_version

if TYPE_CHECKING:
    import pyarrow as pa

    from mlcycle.project import Project
    from mlcycle.store import ModelVersionRecord

__all__ = ["FORMATS", "register_model"]

_log = logging.getLogger("mlcycle.workflow")

FORMATS = ("onnx", "sklearn", "torch", "lightgbm", "xgboost")
# Parity tolerances on probabilities (regression: relative to max(1, |value|)).
TREE_ATOL = 1e-5  # trees and linear models: the same arithmetic in float32
TORCH_ATOL = 1e-4  # as for mlcycle's own networks
_OPSET = {"": 18, "ai.onnx.ml": 3}
_BOOSTER_OPSET = 15  # the newest onnxmltools 1.16 converts to
_MIN_OPSET = 9  # the oldest default-domain opset registry._wrap builds on
_PACKAGES = ("mlcycle", "onnx", "onnxruntime", "scikit-learn", "skl2onnx", "onnxmltools", "torch")

Native = Callable[["pa.Table"], np.ndarray[Any, Any]]


@dataclass
class _Converted:
    """A model as an ONNX core, and how to ask the model itself (for the parity check)."""

    core: onnx.ModelProto
    format: str
    source: str
    sha256: str
    native: Native | None = None
    native_name: str | None = None
    atol: float = TREE_ATOL
    notes: list[str] = field(default_factory=list)
    matrix_columns: list[str] | None = None  # a matrix input's column order; None: schema order


def register_model(
    model: Any,
    *,
    data: str,
    name: str,
    alias: str | None = None,
    project: Project | str | os.PathLike[str] = ".",
    native_check: bool = True,
    description: str | None = None,
    reason: str | None = None,
    run_id: str | None = None,
) -> ModelVersionRecord:
    """Make a model trained elsewhere the next version of model ``name``, on dataset ``data``.

    ``model`` is a torch ``nn.Module`` (taking one float tensor ``[N, F]`` of
    the dataset's feature columns in schema order, answering logits or
    probabilities in the dataset's class order), a fitted scikit-learn
    estimator or pipeline, a LightGBM or XGBoost model, or an ONNX graph
    (bytes, or the path of a ``.onnx`` file). Its probabilities must cover
    the dataset's classes; test metrics, monitoring's reference and the OOD
    detector are computed on ``data``'s recorded split as for a run.

    Args:
        data: the dataset version (``NAME@VERSION``) the model was trained on.
        native_check: check the graph against the model's own answers on the
            test rows (not possible for ONNX given as such).
        run_id: the tracked run that trained it (``run.register`` passes it):
            the version links to it and the run gets the test metrics and report.

    Raises:
        InvalidNameError: ``name`` or ``alias`` breaks the naming rule; nothing is done.
        DataError: the model cannot be converted, is not ONNX, or its inputs or
            classes disagree with the dataset (naming the columns or classes).
        ParityError: the graph disagrees with the native model; nothing is registered.

    Example (in a project with ``breast_cancer@1``)::

        pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
        mlcycle.register_model(pipeline, data="breast_cancer@1", name="cancer")
    """
    check_name(name, "model name")
    if alias is not None:
        check_alias(alias)
    if isinstance(project, str | os.PathLike):
        from mlcycle.project import Project

        with Project.open(project) as opened:
            return register_model(
                model,
                data=data,
                name=name,
                alias=alias,
                project=opened,
                native_check=native_check,
                description=description,
                reason=reason,
                run_id=run_id,
            )
    dataset = project.datasets.get(data)
    schema = project.datasets.schema(dataset)
    if schema.target is None or schema.task is None:
        raise DataError(f"dataset {dataset.ref} has no target: a model cannot be evaluated on it")
    images = [c for c in schema.features if schema.column(c).type == "image"]
    if images:
        raise DataError(
            f"dataset {dataset.ref} has the image column {images[0]!r}: importing a model "
            "takes table columns only"
        )
    splits = project.datasets.load_split(dataset)
    if splits["test"].num_rows == 0:
        raise DataError(f"dataset {dataset.ref} has no test rows: the checks need some")
    task = schema.task
    classes = list(schema.classes or ()) if task != "regression" else None
    layout = fit_layout(schema, splits["train"])

    converted = _convert(model, layout, schema, classes)
    onnx_bytes, mapping = _wrap(converted, layout, schema, task, classes)
    signature = dataset_signature(dataset, layout, task=task, target=schema.target, classes=classes)
    predictor = Predictor(onnx_bytes, signature, name=name)
    outputs = {part: _answers(predictor, table) for part, table in splits.items()}
    if classes is not None and outputs["test"].shape[1] != len(classes):
        raise DataError(
            f"the model answers {outputs['test'].shape[1]} probabilities per row; the dataset "
            f"{dataset.ref} has {len(classes)} classes {classes}"
        )
    if converted.native is not None and native_check:
        parity = check_parity(
            converted.native(splits["test"]),
            predictor,
            splits["test"],
            atol=converted.atol,
            native=str(converted.native_name),
        )
        parity["native"] = converted.native_name
    else:
        why = "no native model was given" if converted.native is None else "native_check=False"
        parity = {"checked": False, "native": None, "why": why}

    evaluation = evaluate_outputs(
        project,
        run_id,
        schema,
        splits,
        outputs,
        project.spec.evaluate,
        facts={"dataset": dataset.ref, "model": f"imported ({converted.format})"},
    )
    if run_id is not None:
        project.store.update_summary(run_id, evaluation.summary)
    summary = evaluation.summary
    split = {part: table.num_rows for part, table in splits.items()}
    imported: dict[str, Any] = {
        "format": converted.format,
        "sha256": converted.sha256,
        "source": converted.source,
        "inputs": "matrix" if mapping else "columns",
    }
    if mapping:
        imported["mapping"] = mapping
    if converted.notes:
        imported["notes"] = converted.notes
    return store_version(
        project,
        name,
        predictor=predictor,
        onnx=onnx_bytes,
        splits=splits,
        metrics={
            "test": summary["test"],
            "test_ci": summary["test_ci"],
            "test_metrics": summary["test_metrics"],
            "val": {},
            "threshold": summary["threshold"],
            "warnings": summary["warnings"],
            "parity": parity,
        },
        lineage={
            "imported": imported,
            **({"run": run_id} if run_id is not None else {}),
            "dataset": dataset.ref,
            "dataset_fingerprint": dataset.fingerprint,
            "split": split,
            "packages": _packages(),
        },
        dataset=dataset_facts(dataset, split),
        run_id=run_id,
        alias=alias,
        description=description,
        reason=reason or f"imported ({converted.format})",
    )


def _answers(predictor: Predictor, table: pa.Table) -> np.ndarray[Any, Any]:
    result = predictor.predict(table.select(predictor.input_names))
    answers = result.values if result.probabilities is None else result.probabilities
    assert answers is not None
    return answers


def _packages() -> dict[str, str]:
    found = {}
    for package in _PACKAGES:
        try:
            found[package] = package_version(package)
        except PackageNotFoundError:
            continue
    return found


# --- the model as an ONNX core -----------------------------------------------------------


def _convert(
    model: Any, layout: FeatureLayout, schema: Schema, classes: list[str] | None
) -> _Converted:
    if isinstance(model, bytes | bytearray | str | os.PathLike):
        return _from_onnx(model)
    if isinstance(model, onnx.ModelProto):
        return _from_onnx(model.SerializeToString())
    kind = type(model).__module__.split(".")[0]
    if isinstance(model, torch.nn.Module):
        return _from_torch(model, layout, schema, classes)
    if kind in ("lightgbm", "xgboost"):
        return _from_booster(model, kind, layout, schema, classes)
    from sklearn.base import BaseEstimator

    if isinstance(model, BaseEstimator):
        return _from_sklearn(model, layout, schema, classes)
    raise DataError(
        f"cannot register a {type(model).__module__}.{type(model).__qualname__}: expected a "
        "torch nn.Module, a scikit-learn estimator or pipeline, a LightGBM or XGBoost model, "
        "ONNX bytes or the path of an .onnx file"
    )


def _from_onnx(given: bytes | bytearray | str | os.PathLike[str]) -> _Converted:
    if isinstance(given, bytes | bytearray):
        data, where = bytes(given), "the bytes given"
    else:
        path = Path(given)
        if not path.is_file():
            raise DataError(f"{path}: no such file (expected an ONNX model)")
        data, where = path.read_bytes(), str(path)
    try:
        proto = onnx.load_model_from_string(data)
    except Exception:  # protobuf's DecodeError and friends: not worth naming each
        proto = None
    if proto is None or not proto.graph.node or not proto.graph.output:
        raise DataError(f"{where}: not an ONNX model (no graph could be read from it)")
    return _Converted(
        core=proto,
        format="onnx",
        source=where,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _class_order(model: Any, classes: list[str] | None) -> list[int] | None:
    """Positions of the dataset's classes among the model's (``classes_``); None: the same order."""
    if classes is None or not hasattr(model, "classes_"):
        return None
    own = [str(c) for c in model.classes_]
    if own == classes:
        return None
    if sorted(own) == sorted(classes):
        return [own.index(c) for c in classes]
    if own == [str(i) for i in range(len(classes))]:
        return None  # trained on class indices, in the dataset's order
    raise DataError(f"{type(model).__name__} knows the classes {own}; the dataset has {classes}")


def _native_frame(table: pa.Table, columns: list[str], categorical: set[str]) -> Any:
    """The rows as a DataFrame, a missing category as ``""``: what the graph is fed for it
    (mlcycle's inputs send ``""`` for a missing string), so that both answer the same rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    picked = table.select(columns)
    for i, name in enumerate(columns):
        if name in categorical:
            filled = pc.fill_null(picked.column(i).cast(pa.string()), "")
            picked = picked.set_column(i, name, filled)
    return picked.to_pandas()


def _matrix(table: pa.Table, layout: FeatureLayout) -> np.ndarray[Any, Any]:
    numeric = encode(table, layout).numeric
    assert numeric is not None
    return numeric


def _numeric_only(layout: FeatureLayout, what: str) -> None:
    if layout.categorical:
        raise DataError(
            f"{what} takes one float tensor [N, F]; the dataset has categorical columns "
            f"{list(layout.categorical)}: those need a graph with one input per raw column "
            "(a scikit-learn pipeline over a DataFrame, converted with a StringTensorType each)"
        )


def _from_sklearn(
    model: Any, layout: FeatureLayout, schema: Schema, classes: list[str] | None
) -> _Converted:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.base import is_classifier

    label = f"scikit-learn {type(model).__name__}"
    names = getattr(model, "feature_names_in_", None)
    columns = [str(c) for c in names] if names is not None else None
    categorical = set(layout.categorical)
    matrix_order: list[str] | None = None
    if columns is not None and (
        _selects_by_name(model) or any(c in categorical for c in columns)
    ):  # a DataFrame's columns picked by name: one input per raw column
        initial: list[tuple[str, Any]] = [
            (c, StringTensorType([None, 1]) if c in categorical else FloatTensorType([None, 1]))
            for c in columns
        ]
    elif columns is not None:  # a DataFrame of numbers: one matrix, in the frame's order
        _numeric_only(layout, label)
        _same_columns(columns, list(layout.numeric), label)
        initial = [("features", FloatTensorType([None, len(columns)]))]
        matrix_order = columns
    else:
        _numeric_only(layout, label)
        initial = [("features", FloatTensorType([None, len(layout.numeric)]))]

    def native_input(table: pa.Table) -> Any:
        if columns is None:
            return _matrix(table, layout)
        return _native_frame(table, [c for c in columns if c in table.column_names], categorical)

    classifier = is_classifier(model)
    options = {id(model): {"zipmap": False}} if classifier else None
    try:
        proto = convert_sklearn(
            model, initial_types=initial, options=options, target_opset=dict(_OPSET)
        )
    except Exception as exc:  # skl2onnx raises RuntimeError, TypeError, its own errors...
        raise DataError(
            f"skl2onnx cannot convert the {type(model).__name__}{_culprit(exc, model)}: "
            f"{_first_line(exc)}"
        ) from None
    order = _class_order(model, classes) if classifier else None
    if order is not None:
        proto = reorder_scores(proto, None, order, task="binary")

    def native(table: pa.Table) -> np.ndarray[Any, Any]:
        x = native_input(table)
        if classifier:
            probabilities = np.asarray(model.predict_proba(x), dtype=np.float64)
            return probabilities[:, order] if order is not None else probabilities
        return np.asarray(model.predict(x), dtype=np.float64).reshape(-1)

    data = proto.SerializeToString()
    return _Converted(
        core=proto,
        format="sklearn",
        source=f"{type(model).__module__}.{type(model).__qualname__}",
        sha256=hashlib.sha256(data).hexdigest(),
        native=native,
        native_name=label,
        atol=TREE_ATOL,
        matrix_columns=matrix_order,
    )


def _selects_by_name(model: Any) -> bool:
    """Whether ``model`` starts with a ColumnTransformer (which picks DataFrame columns by name)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    while isinstance(model, Pipeline):
        model = model.steps[0][1]
    return isinstance(model, ColumnTransformer)


def _same_columns(given: list[str], expected: list[str], label: str) -> None:
    missing = [c for c in expected if c not in given]
    extra = [c for c in given if c not in expected]
    if missing or extra:
        raise DataError(
            f"the {label} was fitted on other columns than the dataset's features: "
            + "; ".join(
                part
                for part in (
                    f"missing {missing}" if missing else "",
                    f"not feature columns of the dataset {extra}" if extra else "",
                )
                if part
            )
        )


def _culprit(exc: Exception, model: Any) -> str:
    """The step skl2onnx has no converter for, when its message names one."""
    found = re.search(r"<class '(\w+(?:\.\w+)+)'>", str(exc))  # a module's class, not 'float'
    if found is None:
        return ""
    culprit = found.group(1).rsplit(".", 1)[-1]
    return "" if culprit == type(model).__name__ else f" (its step {culprit} has no converter)"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _from_booster(
    model: Any, kind: str, layout: FeatureLayout, schema: Schema, classes: list[str] | None
) -> _Converted:
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    label = f"{kind} {type(model).__name__}"
    _numeric_only(layout, label)
    initial = [("features", FloatTensorType([None, len(layout.numeric)]))]
    convert = onnxmltools.convert_lightgbm if kind == "lightgbm" else onnxmltools.convert_xgboost
    extra = {"zipmap": False} if kind == "lightgbm" else {}
    try:
        proto = convert(model, initial_types=initial, target_opset=_BOOSTER_OPSET, **extra)
    except Exception as exc:  # the converters raise what their backends raise
        raise DataError(f"onnxmltools cannot convert the {label}: {_first_line(exc)}") from None
    proto = _without_zipmap(proto)
    classifier = classes is not None
    order = _class_order(model, classes) if classifier else None
    if order is not None:
        proto = reorder_scores(proto, None, order, task="binary")

    def native(table: pa.Table) -> np.ndarray[Any, Any]:
        x = _matrix(table, layout)
        if not classifier:
            return np.asarray(model.predict(x), dtype=np.float64).reshape(-1)
        if hasattr(model, "predict_proba"):
            probabilities = np.asarray(model.predict_proba(x), dtype=np.float64)
        else:  # a bare Booster: the positive class's probability for a binary task
            raw = np.asarray(model.predict(x), dtype=np.float64)
            probabilities = np.column_stack([1 - raw, raw]) if raw.ndim == 1 else raw
        return probabilities[:, order] if order is not None else probabilities

    data = proto.SerializeToString()
    return _Converted(
        core=proto,
        format=kind,
        source=f"{type(model).__module__}.{type(model).__qualname__}",
        sha256=hashlib.sha256(data).hexdigest(),
        native=native,
        native_name=label,
        atol=TREE_ATOL,
    )


def _at_least(proto: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """``proto`` converted up to default-domain ``opset`` when a converter chose an older one
    (onnxmltools picks the oldest its operators need)."""
    current = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if current >= opset:
        return proto
    from onnx import version_converter

    try:
        converted: onnx.ModelProto = version_converter.convert_version(proto, opset)
    except Exception as exc:  # the converter raises RuntimeError, ValueError, its own...
        raise DataError(
            f"the graph's opset {current} is older than mlcycle takes ({opset}) and cannot be "
            f"converted: {_first_line(exc)}"
        ) from None
    return converted


def _without_zipmap(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Drop a ZipMap (a list of dicts per row) that a converter put after the probabilities."""
    zipmaps = [n for n in proto.graph.node if n.op_type == "ZipMap"]
    if not zipmaps:
        return proto
    for node in zipmaps:
        proto.graph.node.remove(node)
        for output in list(proto.graph.output):
            if output.name == node.output[0]:
                proto.graph.output.remove(output)
                proto.graph.output.append(
                    onnx.helper.make_tensor_value_info(node.input[0], TensorProto.FLOAT, None)
                )
    return proto


def _from_torch(
    module: torch.nn.Module, layout: FeatureLayout, schema: Schema, classes: list[str] | None
) -> _Converted:
    label = f"torch {type(module).__name__}"
    _numeric_only(layout, label)
    module = module.cpu().eval()
    probe = torch.zeros((2, len(layout.numeric)), dtype=torch.float32)
    try:
        with torch.no_grad():
            raw = module(probe)
    except Exception as exc:  # whatever the user's forward raises
        raise DataError(
            f"the {label} cannot take a float tensor [N, {len(layout.numeric)}] of the "
            f"dataset's feature columns: {_first_line(exc)}"
        ) from None
    wrapped = _Answers(module, _answer_kind(raw, classes, label))

    def native(table: pa.Table) -> np.ndarray[Any, Any]:
        with torch.no_grad():
            out = wrapped(torch.from_numpy(_matrix(table, layout)))
        return np.asarray(out.numpy(), dtype=np.float64)

    proto = export_module(wrapped, (probe,), ["features"], ["scores"])
    data = proto.SerializeToString()
    return _Converted(
        core=proto,
        format="torch",
        source=f"{type(module).__module__}.{type(module).__qualname__}",
        sha256=hashlib.sha256(data).hexdigest(),
        native=native,
        native_name=label,
        atol=TORCH_ATOL,
        notes=[f"the module's outputs are read as {wrapped.kind}"],
    )


def _answer_kind(raw: Any, classes: list[str] | None, label: str) -> str:
    """What a module's outputs are: ``values``, ``probabilities``, ``logits`` or ``logit``
    (one column, the second class's log-odds)."""
    shape = tuple(raw.shape)
    if classes is None:
        if len(shape) == 1 or (len(shape) == 2 and shape[1] == 1):
            return "values"
        raise DataError(
            f"the {label} answers {list(shape)} per batch; regression needs [N] or [N, 1]"
        )
    if len(classes) == 2 and (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        return "logit"
    if len(shape) != 2 or shape[1] != len(classes):
        raise DataError(
            f"the {label} answers {list(shape[1:])} per row; the dataset has "
            f"{len(classes)} classes {classes}"
        )
    rows = raw.detach().double()
    sums = rows.sum(dim=1)
    probabilities = bool((rows >= 0).all() and ((sums - 1).abs() < 1e-4).all())
    return "probabilities" if probabilities else "logits"


class _Answers(torch.nn.Module):
    """A user's module with its outputs as mlcycle's: probabilities or values."""

    def __init__(self, inner: torch.nn.Module, kind: str) -> None:
        super().__init__()
        self.inner = inner
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(x)
        if self.kind == "values":
            return out.reshape(-1)
        if self.kind == "logits":
            return torch.softmax(out, dim=1)
        if self.kind == "logit":
            p = torch.sigmoid(out.reshape(-1, 1))
            return torch.cat([1 - p, p], dim=1)
        return out


# --- the core inside mlcycle's contract --------------------------------------------------


def _wrap(
    converted: _Converted,
    layout: FeatureLayout,
    schema: Schema,
    task: str,
    classes: list[str] | None,
) -> tuple[bytes, str | None]:
    """The graph of mlcycle's contract, and the sentence saying how columns feed a matrix input."""
    converted.core = _at_least(converted.core, _MIN_OPSET)
    graph = converted.core.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if not inputs:
        raise DataError(f"{converted.source}: the graph takes no input")
    matrix = (
        len(inputs) == 1
        and inputs[0].type.tensor_type.elem_type == TensorProto.FLOAT
        and len(inputs[0].type.tensor_type.shape.dim) == 2
        and inputs[0].name not in schema.features
    )
    if not matrix:
        data = wrap_column_graph(converted.core, layout, task=task, classes=classes)
        return data, None
    _numeric_only(layout, f"the graph's input {inputs[0].name!r}")
    dims = inputs[0].type.tensor_type.shape.dim
    schema_order = list(layout.numeric)  # numeric and boolean features, in schema order
    columns = converted.matrix_columns or schema_order
    if not dims[1].HasField("dim_value"):
        raise DataError(
            f"input {inputs[0].name!r} has a dynamic number of columns "
            f"[N, {dims[1].dim_param or '?'}]: mlcycle maps the dataset's {len(columns)} "
            "feature columns to a fixed width only; export it with [N, F] static"
        )
    data = wrap_matrix_graph(converted.core, layout, task=task, classes=classes, columns=columns)
    mapping = (
        f"the graph takes one float tensor [N, {len(columns)}] ({inputs[0].name!r}): mlcycle "
        f"feeds it the dataset's feature columns in "
        f"{'schema order' if columns == schema_order else 'the order the model was fitted with'} "
        f"({', '.join(columns)})"
    )
    _log.warning("%s", mapping)
    return data, mapping
