"""Gradient-boosted trees (``train.model.kind: gbm``): LightGBM on mlcycle's features.

The trees see the columns mlcycle's :class:`~mlcycle.train.FeatureLayout`
chose, as one float matrix: numeric (and boolean) columns as they are, NaN
kept (LightGBM routes missing values itself), then categorical columns as
the layout's codes (``i + 1`` is the ``i``-th training category, ``0``
missing or unseen), declared categorical so that LightGBM splits on sets of
categories natively. Each boosting round is reported as an epoch is (step =
round), early stopping watches the validation rows, and the best round's
trees are the model.

The model is stored as LightGBM's own text (``model_to_string``, no pickle)
with a ``model.json``, and exported to ONNX with onnxmltools, wrapped into
mlcycle's raw-column graph (:func:`mlcycle.registry.wrap_matrix_graph`).
LightGBM compares features with thresholds in double precision and ONNX
Runtime's tree operators in single precision; every numeric threshold is
therefore moved down to the largest float32 not above it, which changes no
answer for float32 inputs (all that mlcycle feeds) and makes the graph agree
with LightGBM to rounding of the leaf sums.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle._system import cores
from mlcycle.errors import ParityError, SpecError
from mlcycle.spec import GbmOptions, ModelSpec, TrainSpec
from mlcycle.train._base import ModelKind, ModelParts
from mlcycle.train._features import Encoded, FeatureLayout, encode
from mlcycle.train._loop import (
    EpochReport,
    TrainData,
    _check_stopping_metric,
    _class_weights,
    val_metrics,
)

if TYPE_CHECKING:
    import lightgbm as lgb
    import pyarrow as pa

    from mlcycle.registry import Predictor
    from mlcycle.train._models import Preprocess

__all__ = [
    "GBM",
    "GBM_TEXT",
    "GbmFit",
    "GbmModel",
    "export_gbm_onnx",
    "fit_gbm",
    "gbm_options",
    "verify_gbm_export",
]

GBM_TEXT = "model/lightgbm.txt"  # the run's artifact; a version stores it as lightgbm.txt
MAX_THREADS = 8
CELLS_PER_THREAD = 500_000
ONNX_OPSET = 15  # the newest default-domain opset onnxmltools' LightGBM converter writes
MIN_DEFAULT_OPSET = 9  # the oldest the raw-column wrapper takes
PARITY_ATOL = 1e-5  # trees answer with sums of leaves: only float32 rounding may differ

# The early-stopping metrics LightGBM computes itself (cheaply, on scores it keeps):
# mlcycle's name -> (LightGBM's metric, how to turn its value into mlcycle's).
_NATIVE: dict[str, dict[str, tuple[str, Callable[[float], float]]]] = {
    "binary": {
        "loss": ("binary_logloss", float),
        "log_loss": ("binary_logloss", float),
        "accuracy": ("binary_error", lambda e: 1.0 - e),
        "roc_auc": ("auc", float),
    },
    "multiclass": {
        "loss": ("multi_logloss", float),
        "log_loss": ("multi_logloss", float),
        "accuracy": ("multi_error", lambda e: 1.0 - e),
    },
    "regression": {
        "loss": ("l2", float),
        "rmse": ("rmse", float),
        "mae": ("l1", float),
    },
}
_OBJECTIVE = {"binary": "binary", "multiclass": "multiclass", "regression": "regression"}


class GBM(ModelKind):
    """Gradient-boosted decision trees (LightGBM); ``train.model.options`` are :class:`GbmOptions`."""

    network = False

    def build(
        self, spec: ModelSpec, inputs: Preprocess, n_outputs: int, *, root: Path | None = None
    ) -> ModelParts:
        raise SpecError(
            "train.model.kind: 'gbm' is gradient-boosted trees, not a network; "
            "it is trained by LightGBM (mlcycle train), not built as a PyTorch module"
        )


def gbm_options(spec: ModelSpec) -> GbmOptions:
    """The kind's settings from ``train.model.options`` (validated with the spec)."""
    return GbmOptions.model_validate(spec.options)


def check_tabular(layout: FeatureLayout) -> None:
    """Refuse an image column: trees take tabular columns.

    Raises:
        SpecError: naming the image column and the kind that takes it.
    """
    if layout.image is not None:
        raise SpecError(
            f"train.model.kind: 'gbm' takes tabular columns; this dataset has the image "
            f"column {layout.image!r} (use cnn, or mlp)"
        )


def feature_matrix(x: Encoded) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The trees' input: numeric columns, then categorical codes, as one float32 matrix."""
    parts = []
    if x.numeric is not None:
        parts.append(x.numeric.astype(np.float32, copy=False))
    if x.categorical is not None:
        parts.append(x.categorical.astype(np.float32))
    if not parts:
        return np.zeros((len(x), 0), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)


@dataclass
class GbmModel:
    """A trained booster with what it needs to answer in mlcycle's units.

    ``rounds`` is how many of the booster's rounds are the model (the best
    round's, after early stopping); None: all of them. ``stored``: the booster
    was read back from the stored text (which holds those rounds only).
    """

    booster: lgb.Booster
    layout: FeatureLayout
    task: str
    classes: tuple[str, ...]
    rounds: int | None = None
    stored: bool = False
    _text: str | None = field(default=None, init=False, repr=False)

    def outputs(self, x: Encoded) -> np.ndarray[Any, Any]:
        """Probabilities ``[N, K]`` (classification) or values ``[N]`` (regression)."""
        raw = self.booster.predict(feature_matrix(x), num_iteration=self.rounds or -1)
        raw = np.asarray(raw, dtype=np.float64)
        if self.task == "binary":
            return np.stack([1.0 - raw, raw], axis=1)
        return raw

    def predict_table(self, table: pa.Table) -> np.ndarray[Any, Any]:
        """:meth:`outputs` for the rows of a table of raw columns."""
        return self.outputs(encode(table, self.layout))

    def to_text(self) -> str:
        """LightGBM's text of the model's rounds, thresholds as float32 (what is stored)."""
        if self._text is None:
            whole = self.booster.model_to_string(num_iteration=self.rounds or -1)
            self._text = whole if self.stored else float32_thresholds(whole)
        return self._text

    def stored_booster(self) -> lgb.Booster:
        """The booster the stored text makes (the one exported and checked for parity)."""
        import lightgbm as lgb

        return self.booster if self.stored else lgb.Booster(model_str=self.to_text())

    @property
    def trees(self) -> int:
        per_round = int(self.booster.num_model_per_iteration())
        return (self.rounds or int(self.booster.current_iteration())) * per_round

    @property
    def leaves(self) -> int:
        """Leaves over all trees: what the model learned, its "parameters"."""
        dump = self.booster.dump_model(num_iteration=self.rounds)
        return int(sum(tree["num_leaves"] for tree in dump["tree_info"]))


def load_gbm(text: str, config: dict[str, Any]) -> GbmModel:
    """The model from its LightGBM text and ``model.json`` (a run's or a version's)."""
    import lightgbm as lgb

    return GbmModel(
        booster=lgb.Booster(model_str=text),
        layout=FeatureLayout.from_dict(config["layout"]),
        task=str(config["task"]),
        classes=tuple(config.get("classes") or ()),
        stored=True,
    )


def float32_thresholds(text: str) -> str:
    """LightGBM model text whose numeric thresholds are float32 values (see the module's note).

    Each becomes the largest float32 not above it: for a float32 ``x``,
    ``x <= threshold`` holds exactly when ``x <= new threshold`` does.

    The header's ``tree_sizes`` (byte offsets that let LightGBM load trees in
    parallel) no longer hold and are dropped; LightGBM then reads the trees
    one after the other.
    """
    lines = text.split("\n")
    out: list[str] = []
    tree: list[str] = []

    def flush() -> None:
        if not tree:
            return
        decision = next((x for x in tree if x.startswith("decision_type=")), None)
        if decision is not None:
            kinds = [int(v) for v in decision.partition("=")[2].split()]
            for i, line in enumerate(tree):
                if line.startswith("threshold="):
                    values = line.partition("=")[2].split()
                    exact = np.array(values, dtype=np.float64)
                    down = exact.astype(np.float32)
                    up = down.astype(np.float64) > exact
                    down[up] = np.nextafter(down[up], np.float32(-np.inf))
                    moved = down.astype(np.float64).tolist()
                    tree[i] = "threshold=" + " ".join(
                        v if kinds[j] & 1 else repr(moved[j])  # bit 0 of the kind: categorical
                        for j, v in enumerate(values)
                    )
        out.extend(tree)
        tree.clear()

    for line in lines:
        if line.startswith("tree_sizes="):
            continue
        if line.startswith("Tree=") or line.startswith("end of trees"):
            flush()
        (tree if tree or line.startswith("Tree=") else out).append(line)
    flush()
    return "\n".join(out)


@dataclass
class GbmFit:
    """What boosting returned, in the shape the run records (rounds are its epochs)."""

    model: GbmModel
    best_epoch: int  # index from 0 (-1: no round improved)
    best_value: float
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, float]]
    train_seconds: float
    samples_seen: int
    device: str = "cpu"


def _params(
    spec: TrainSpec, options: GbmOptions, data: TrainData, layout: FeatureLayout
) -> dict[str, Any]:
    names = [*layout.numeric, *layout.categorical]
    monotone = [0] * len(names)
    for column, sign in options.monotone.items():
        if column in layout.categorical:
            raise SpecError(
                f"train.model.options.monotone.{column}: {column!r} is categorical; "
                "a monotone constraint needs a numeric column"
            )
        if column not in layout.numeric:
            raise SpecError(
                f"train.model.options.monotone.{column}: no numeric feature {column!r} "
                f"(numeric features: {', '.join(layout.numeric) or 'none'})"
            )
        monotone[names.index(column)] = sign
    params: dict[str, Any] = {
        "objective": _OBJECTIVE[data.task],
        "metric": [],
        "learning_rate": options.learning_rate,
        "num_leaves": options.num_leaves,
        "max_depth": options.max_depth,
        "min_child_samples": options.min_child_samples,
        "feature_fraction": options.feature_fraction,
        "bagging_fraction": options.bagging_fraction,
        "bagging_freq": options.bagging_freq,
        "lambda_l1": options.lambda_l1,
        "lambda_l2": options.lambda_l2,
        "min_split_gain": options.min_split_gain,
        "cat_smooth": options.cat_smooth,
        "min_data_per_group": options.min_data_per_group,
        "seed": spec.seed,
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": options.num_threads or _threads(len(data.train_y) * len(names)),
        "verbosity": -1,
    }
    if data.task == "multiclass":
        params["num_class"] = data.n_classes
    if any(monotone):
        params["monotone_constraints"] = monotone
    return params


def _threads(cells: int) -> int:
    """Threads for a training matrix of ``cells`` values: one per ``CELLS_PER_THREAD``.

    A thread's share of a small matrix is less work than OpenMP's hand-offs
    between rounds, and a waiting thread spins: on a busy machine two threads
    boost a 400-row table ten times slower than one.
    """
    return max(1, min(cores(), MAX_THREADS, cells // CELLS_PER_THREAD))


def _weights(spec: TrainSpec, data: TrainData) -> np.ndarray[Any, Any] | None:
    """Per-row weights from ``train.class_weight`` (and the ``balanced`` sampler)."""
    if data.task == "regression":
        return None
    weights = np.ones(len(data.train_y), dtype=np.float64)
    per_class = _class_weights(spec, data)
    if per_class is not None:
        weights *= np.asarray(per_class)[data.train_y]
    if spec.sampler == "balanced":
        counts = np.bincount(data.train_y, minlength=data.n_classes)
        weights /= np.maximum(counts, 1)[data.train_y]
        weights *= len(weights) / weights.sum()
    return None if np.all(weights == 1.0) else weights


def fit_gbm(
    spec: TrainSpec,
    layout: FeatureLayout,
    data: TrainData,
    *,
    on_epoch: Callable[[EpochReport], None] | None = None,
    heartbeat: Callable[[], None] | None = None,
) -> GbmFit:
    """Boost on ``data.train_*``, stop on ``data.val_*``; return the best round's trees.

    Each round's ``train_loss``, ``val_loss`` and the early-stopping metric
    (``val_<metric>``) go to ``on_epoch`` as an :class:`EpochReport` (no
    checkpoint: a round costs milliseconds), which may raise to stop.

    Raises:
        SpecError: an image column, a bad monotone constraint or early-stopping metric.
    """
    import lightgbm as lgb

    check_tabular(layout)
    options = gbm_options(spec.model)
    metric = spec.early_stopping.metric
    minimise = _check_stopping_metric(metric, data)
    native = _NATIVE[data.task]
    loss_name = native["loss"][0]
    params = _params(spec, options, data, layout)
    params["metric"] = sorted({loss_name, *([native[metric][0]] if metric in native else [])})
    categorical = list(range(len(layout.numeric), len(layout.numeric) + len(layout.categorical)))
    train_x, val_x = feature_matrix(data.train_x), feature_matrix(data.val_x)
    train_set = lgb.Dataset(
        train_x,
        label=data.train_y,
        weight=_weights(spec, data),
        categorical_feature=categorical or "auto",
        free_raw_data=False,
        params={"verbosity": -1},
    )
    val_set = lgb.Dataset(val_x, label=data.val_y, reference=train_set)

    def own_metric(preds: np.ndarray[Any, Any], rows: lgb.Dataset) -> tuple[str, float, bool]:
        """The early-stopping metric LightGBM does not compute, by evaluation's metric table."""
        y = data.val_y if rows is val_set else data.train_y
        out = np.stack([1.0 - preds, preds], axis=1) if data.task == "binary" else preds
        value = val_metrics(data.task, y, out, data.classes, names=(metric,)).get(metric)
        return metric, float("nan") if value is None else float(value), not minimise

    history: list[dict[str, float]] = []
    best_value, best_round = math.inf, -1
    patience = options.early_stopping_rounds
    min_delta = spec.early_stopping.min_delta

    def each_round(env: lgb.callback.CallbackEnv) -> None:
        nonlocal best_value, best_round
        row: dict[str, float] = {}
        for result in env.evaluation_result_list or []:
            dataset, name, value = result[0], result[1], result[2]
            side = "train" if dataset == "training" else "val"
            if name == loss_name:
                row[f"{side}_loss"] = float(value)
            if side == "val" and name == native.get(metric, ("",))[0]:
                row[f"val_{metric}"] = native[metric][1](float(value))
            elif side == "val" and name == metric and metric not in native:
                row[f"val_{metric}"] = float(value)
        history.append(row)
        value = row[f"val_{metric}"] if metric != "loss" else row["val_loss"]
        signed = value if minimise else -value
        improved = signed < best_value - min_delta
        if improved:
            best_value, best_round = signed, env.iteration
        if heartbeat is not None:
            heartbeat()
        if on_epoch is not None:
            on_epoch(EpochReport(env.iteration, row, improved, None))
        if env.iteration - best_round >= patience:
            raise lgb.callback.EarlyStopException(best_round, env.evaluation_result_list or [])

    each_round.order = 30  # type: ignore[attr-defined]  # after LightGBM's own callbacks
    started = time.perf_counter()
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=options.n_estimators,
        valid_sets=[train_set, val_set],
        valid_names=["training", "validation"],
        feval=own_metric if metric not in native else None,
        callbacks=[each_round],
    )
    seconds = time.perf_counter() - started
    rounds = len(history)
    # The stored text (float32 thresholds, best rounds only) is written when the run is
    # recorded (GbmModel.to_text); for float32 inputs it answers as this booster does.
    model = GbmModel(
        booster,
        layout,
        data.task,
        tuple(data.classes),
        rounds=best_round + 1 if best_round >= 0 else None,
    )
    return GbmFit(
        model=model,
        best_epoch=best_round,
        best_value=float(best_value if minimise else -best_value),
        epochs_run=rounds,
        stopped_early=rounds < options.n_estimators,
        history=history,
        train_seconds=seconds,
        samples_seen=rounds * len(data.train_y),
    )


def gbm_config(
    spec: ModelSpec, layout: FeatureLayout, task: str, classes: tuple[str, ...]
) -> dict[str, Any]:
    """The run's ``model.json`` for a gbm model (``model.kind`` says ``gbm``)."""
    return {
        "model": spec.model_dump(mode="json"),
        "layout": layout.to_dict(),
        "task": task,
        "n_outputs": len(classes) if task != "regression" else 1,
        "format": "lightgbm-text",
        "classes": list(classes),
    }


def export_gbm_onnx(model: GbmModel) -> bytes:
    """The booster as ONNX with mlcycle's raw-column inputs and named outputs.

    onnxmltools converts the trees to a graph over one ``float [N, F]`` matrix
    (``zipmap`` off: probabilities as a tensor); the registry's wrapper puts
    one input per raw column (categories coded inside the graph) and the
    ``probabilities``/``label`` or ``value`` outputs around it.
    """
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    from mlcycle.registry._wrap import wrap_matrix_graph

    width = len(model.layout.numeric) + len(model.layout.categorical)
    core = convert_lightgbm(
        model.stored_booster(),
        initial_types=[("features", FloatTensorType([None, width]))],
        zipmap=False,
        target_opset=ONNX_OPSET,
    )
    for opset in core.opset_import:
        # onnxmltools declares the lowest default opset its nodes need: 8 for a regressor,
        # whose only such node is an Identity (the same in every opset since 1).
        if opset.domain in ("", "ai.onnx") and opset.version < MIN_DEFAULT_OPSET:
            opset.version = MIN_DEFAULT_OPSET
    return wrap_matrix_graph(
        core,
        model.layout,
        task=model.task,
        classes=list(model.classes) or None,
        output="variable" if model.task == "regression" else "probabilities",
    )


def verify_gbm_export(
    model: GbmModel, predictor: Predictor, table: pa.Table, *, atol: float = PARITY_ATOL
) -> dict[str, Any]:
    """The parity verdict of the exported graph against LightGBM's own answers on ``table``.

    Raises:
        ParityError: saying by how much and where they differ.
    """
    from mlcycle.train._parity import check_parity

    try:
        verdict = check_parity(model.predict_table(table), predictor, table, atol=atol)
        return {**verdict, "native": "LightGBM"}
    except ParityError as exc:
        raise ParityError(str(exc).replace("PyTorch", "LightGBM")) from None


def config_bytes(config: dict[str, Any]) -> bytes:
    return json.dumps(config, indent=2).encode()
