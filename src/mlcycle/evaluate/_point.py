"""Metrics by name on one set of rows: what the training loop asks every epoch.

:func:`classification_metrics` and :func:`regression_metrics` return the
whole record; training needs a few numbers per epoch, fast, by the same
formulas. Both go through the metric table, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy.typing as npt

from mlcycle.errors import DataError, SpecError
from mlcycle.evaluate._classification import check_classification, check_labels, predict_labels
from mlcycle.evaluate._metrics import (
    ClassificationRows,
    RegressionRows,
    compute,
    metric,
    metric_names,
)
from mlcycle.evaluate._regression import check_regression
from mlcycle.evaluate._task import resolve_task

__all__ = ["checked_rows", "label_metrics", "point_metrics"]


def checked_rows(
    task: str,
    y_true: npt.ArrayLike,
    proba_or_pred: npt.ArrayLike,
    classes: Sequence[str] | None,
    threshold: float | None = None,
) -> ClassificationRows | RegressionRows:
    """The rows of one evaluation, checked, for the metric table's formulas."""
    family = resolve_task(task, classes)
    if family == "regression":
        return RegressionRows(*check_regression(y_true, proba_or_pred))
    assert classes is not None  # resolve_task checked it
    labels, p, names = check_classification(y_true, proba_or_pred, classes)
    return ClassificationRows(labels, predict_labels(p, threshold), p, len(names))


def point_metrics(
    task: str,
    y_true: npt.ArrayLike,
    proba_or_pred: npt.ArrayLike,
    classes: Sequence[str] | None = None,
    *,
    names: Sequence[str] | None = None,
    threshold: float | None = None,
) -> dict[str, float | None]:
    """The named metrics (default: all of the task's) on one set of rows.

    Args:
        task: ``binary``, ``multiclass``, ``classification`` or ``regression``.
        y_true: class indices (classification) or targets (regression).
        proba_or_pred: probabilities, shape (n, K), or regression predictions.
        classes: the class names; required for classification.
        names: metric names from the table; an unknown one is a SpecError
            listing the task's metrics.
        threshold: binary only; the decision threshold on ``P(classes[1])``.

    Returns:
        ``{name: value}``, None where the rows leave a metric undefined.

    Example:
        >>> point_metrics("multiclass", [0, 0, 1, 1],
        ...     [[.8, .1, .1], [.7, .2, .1], [.1, .8, .1], [.1, .2, .7]],
        ...     ["a", "b", "c"], names=["f1_macro"])
        {'f1_macro': 0.5555555555555555}
    """
    family = resolve_task(task, classes)
    wanted = metric_names(family) if names is None else tuple(names)
    for name in wanted:
        metric(name, family)
    return compute(wanted, checked_rows(task, y_true, proba_or_pred, classes, threshold))


def label_metrics(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, n_classes: int, names: Sequence[str]
) -> dict[str, float | None]:
    """Metrics that need only predicted labels (accuracy, macro F1, ...), by name.

    For the running training accuracy, where the predictions of each batch
    are kept but not their probabilities.

    Example:
        >>> label_metrics([0, 1, 1], [0, 1, 0], 2, ["accuracy"])
        {'accuracy': 0.6666666666666666}
    """
    for name in names:
        if metric(name, "classification").needs_scores:
            raise SpecError(f"metric {name!r} needs probabilities, not only labels")
    y = check_labels(y_true, n_classes)
    pred = check_labels(y_pred, n_classes, "y_pred")
    if y.shape != pred.shape or y.size == 0:
        raise DataError(f"y_true has {y.shape[0]} rows but y_pred has {pred.shape[0]}")
    return compute(names, ClassificationRows(y, pred, None, n_classes))
