"""Evaluate a trained model on its dataset version's held-out test rows.

The test rows were cut when the version was recorded and never reach
training or early stopping. The decision threshold of a binary classifier,
when the spec asks for one, is chosen on the validation rows, never on test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import torch

from mlcycle.data import Schema
from mlcycle.errors import SpecError
from mlcycle.evaluate import (
    choose_threshold,
    classification_metrics,
    headline_with_ci,
    metric_names,
    metrics_by_slice,
    point_metrics,
    regression_metrics,
    render_report,
)
from mlcycle.spec import EvaluateSpec
from mlcycle.train._features import FeatureLayout, encode, encode_target
from mlcycle.train._loop import EPOCH_METRICS, predict
from mlcycle.train._models import MlcycleNet

if TYPE_CHECKING:
    from mlcycle.project import Project
    from mlcycle.train._gbm import GbmModel

__all__ = ["Evaluation", "evaluate_model", "evaluate_outputs", "report_path"]


@dataclass(frozen=True)
class Evaluation:
    test: dict[str, Any]
    summary: dict[str, Any]
    report: Path | None  # None: evaluated outside a run (an imported model)


def report_path(project: Project, run_id: str) -> Path:
    return project.root / ".mlcycle" / "reports" / f"{run_id}.html"


def evaluate_model(
    project: Project,
    run_id: str,
    model: MlcycleNet | GbmModel,
    schema: Schema,
    layout: FeatureLayout,
    tables: dict[str, pa.Table],
    spec: EvaluateSpec,
    *,
    device: torch.device,
    history: list[dict[str, float]],
    facts: dict[str, Any],
    gap_warning: float = 0.1,
) -> Evaluation:
    """Metrics with confidence intervals, slices, the overfitting check and the HTML report.

    ``model`` is a PyTorch network (run on ``device``) or gradient-boosted trees.
    """

    def answers(table: pa.Table) -> np.ndarray[Any, Any]:
        if isinstance(model, MlcycleNet):
            return predict(model, encode(table, layout), device).numpy()
        return model.outputs(encode(table, layout))

    outputs = {part: answers(tables[part]) for part in ("train", "validation", "test")}
    return evaluate_outputs(
        project,
        run_id,
        schema,
        tables,
        outputs,
        spec,
        history=history,
        facts=facts,
        gap_warning=gap_warning,
    )


def evaluate_outputs(
    project: Project,
    run_id: str | None,
    schema: Schema,
    tables: dict[str, pa.Table],
    outputs: dict[str, np.ndarray[Any, Any]],
    spec: EvaluateSpec,
    *,
    history: list[dict[str, float]] | None = None,
    facts: dict[str, Any],
    gap_warning: float = 0.1,
) -> Evaluation:
    """:func:`evaluate_model` from a model's answers on each split, whatever answered them.

    ``outputs`` holds, for ``train``, ``validation`` and ``test``, the
    probabilities ``[rows, classes]`` (classification) or values (regression)
    in the rows' order: a network's, or an imported model's ONNX graph's. The
    HTML report is written and attached to ``run_id``; with no run there is
    no report.
    """
    task = schema.task or "regression"
    classes = list(schema.classes or ()) if task != "regression" else None
    y_test = encode_target(tables["test"], schema)
    out_test = outputs["test"]
    y_val = encode_target(tables["validation"], schema)
    out_val = outputs["validation"]
    out_train = outputs["train"]
    y_train = encode_target(tables["train"], schema)

    threshold = None
    if spec.threshold_metric is not None and task == "binary":
        threshold, _ = choose_threshold(y_val, out_val[:, 1], spec.threshold_metric)
    if classes is not None:
        metrics = classification_metrics(y_test, out_test, classes, threshold=threshold)
        test = {k: metrics[k] for k in metric_names("classification")}
    else:
        metrics = regression_metrics(y_test, out_test)
        test = {k: metrics[k] for k in metric_names("regression")}
    ci = (
        headline_with_ci(
            task, y_test, out_test, classes, n_boot=spec.bootstrap, threshold=threshold
        )
        if spec.bootstrap > 0
        else {}
    )

    slices: dict[str, Any] = {}
    for column in spec.slices:
        if column not in tables["test"].column_names:
            raise SpecError(
                f"evaluate.slices: column {column!r} is not in the dataset "
                f"(columns: {', '.join(tables['test'].column_names[:10])})"
            )
        slices[column] = metrics_by_slice(
            y_test,
            out_test,
            _slice_values(tables["test"].column(column)),
            task,
            classes,
            threshold=threshold,
            bins=spec.bins,
        )

    # Overfitting: the same metric on training rows (eval mode) against validation rows.
    key = "r2" if task == "regression" else "accuracy"
    names = EPOCH_METRICS["regression" if task == "regression" else "classification"]
    train_eval = point_metrics(task, y_train, out_train, classes, names=names)
    val_eval = point_metrics(task, y_val, out_val, classes, names=names)
    train_key, val_key = train_eval[key], val_eval[key]
    gap = 0.0 if train_key is None or val_key is None else float(train_key - val_key)
    warnings = []
    if gap > gap_warning:
        warnings.append(
            f"train {key} {train_key:.3f} vs validation {val_key:.3f} "
            f"(gap {gap:.3f} > {gap_warning}): the model overfits; try more dropout, "
            "weight decay or a smaller model"
        )

    curves: dict[str, list[float | None]] = {}
    for row in history or []:
        for name in row:
            curves.setdefault(name, [])
    for row in history or []:
        for name, series in curves.items():
            series.append(row.get(name))
    summary: dict[str, Any] = {
        "test": test,
        "test_ci": ci,
        "test_metrics": _jsonable(metrics),
        "threshold": threshold,
        "slices": _jsonable(slices),
        "train_eval": train_eval,
        "generalisation_gap": gap,
        "overfitting": gap > gap_warning,
        "warnings": warnings,
    }
    if run_id is None:
        return Evaluation(test=test, summary=summary, report=None)
    path = report_path(project, run_id)
    render_report(
        path,
        title=f"mlcycle run {run_id[:8]} — {facts.get('dataset', '')}",
        task=task,
        classes=classes,
        metrics=metrics,
        curves=curves,
        y_true=y_test,
        proba_or_pred=out_test,
        summary={
            "run": run_id,
            **facts,
            **(
                {"decision threshold": "argmax" if threshold is None else f"{threshold:.4f}"}
                if classes is not None
                else {}
            ),
            **({"warnings": "; ".join(warnings)} if warnings else {}),
        },
        slices=slices or None,
        n_boot=spec.bootstrap or 200,
    )
    sha = project.artifacts.put_file(path, "text/html").sha256
    project.store.add_run_artifact(run_id, "report.html", sha)
    return Evaluation(test=test, summary={**summary, "report": str(path)}, report=path)


def _slice_values(column: pa.ChunkedArray) -> Any:
    """Numbers as floats (NaN where null), so that they are binned; anything else as is."""
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return column.to_numpy().astype(np.float64)
    return column.to_pylist()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
