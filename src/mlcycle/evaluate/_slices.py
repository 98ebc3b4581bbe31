"""Metrics per slice of the evaluation rows, e.g. per value of a sensitive attribute.

An overall accuracy of 0.9 can hide a group on which the model is at 0.7;
slicing is how evaluation (and later the fairness audit and the monitor)
finds it. A slice too small to say anything is still listed, with its row
count and a note, so that a missing group is visible instead of silently
dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from mlcycle.errors import DataError, SpecError
from mlcycle.evaluate._classification import check_classification, classification_metrics
from mlcycle.evaluate._regression import check_regression, regression_metrics
from mlcycle.evaluate._task import resolve_task

__all__ = ["MISSING", "metrics_by_slice"]

MISSING = "(missing)"


def _key(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return str(value)


def metrics_by_slice(
    y_true: npt.ArrayLike,
    y_pred_or_proba: npt.ArrayLike,
    slice_values: npt.ArrayLike | Sequence[Any],
    task: str,
    classes: Sequence[str] | None = None,
    min_rows: int = 10,
    *,
    threshold: float | None = None,
) -> dict[str, dict[str, Any]]:
    """The evaluation metrics computed separately on each slice of the rows.

    Args:
        y_true: class indices (classification) or targets (regression).
        y_pred_or_proba: probabilities, shape (n, K), or regression predictions.
        slice_values: the slicing column, one value per row; values are
            grouped by their string form, and None/NaN form the slice
            ``"(missing)"``.
        task: ``binary``, ``multiclass``, ``classification`` or ``regression``.
        classes: the class names; required for classification.
        min_rows: slices with fewer rows get only ``n`` and a ``note``.
        threshold: binary only; decision threshold on ``P(classes[1])``.

    Returns:
        ``{slice value: metrics}``, ordered by slice value; each metrics dict
        is what :func:`classification_metrics` or :func:`regression_metrics`
        returns on that slice's rows (so it carries ``n``).

    Example:
        >>> by = metrics_by_slice([1.0, 2.0, 3.0, 5.0], [1.0, 2.5, 3.0, 4.0],
        ...                       ["a", "a", "b", "b"], "regression", min_rows=2)
        >>> {s: m["mae"] for s, m in by.items()}
        {'a': 0.25, 'b': 0.5}
    """
    if min_rows < 1:
        raise SpecError(f"min_rows: {min_rows!r} is not >= 1")
    family = resolve_task(task, classes)
    if family == "classification":
        assert classes is not None  # resolve_task checked it
        labels, proba, names = check_classification(y_true, y_pred_or_proba, classes)
        n_rows = labels.size

        def score(rows: npt.NDArray[np.bool_]) -> dict[str, Any]:
            return classification_metrics(labels[rows], proba[rows], names, threshold=threshold)

    else:
        target, pred = check_regression(y_true, y_pred_or_proba)
        n_rows = target.size

        def score(rows: npt.NDArray[np.bool_]) -> dict[str, Any]:
            return regression_metrics(target[rows], pred[rows])

    raw = np.asarray(slice_values, dtype=object)
    if raw.shape != (n_rows,):
        raise DataError(
            f"slice_values: expected {n_rows} values like y_true, got shape {raw.shape}"
        )
    keys, inverse = np.unique(
        np.array([_key(v) for v in raw.tolist()], dtype=str), return_inverse=True
    )
    result: dict[str, dict[str, Any]] = {}
    for code, key in enumerate(keys.tolist()):
        rows = inverse == code
        n = int(rows.sum())
        if n < min_rows:
            result[key] = {"n": n, "note": f"fewer than {min_rows} rows; metrics not computed"}
        else:
            result[key] = score(rows)
    return result
