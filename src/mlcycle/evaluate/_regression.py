"""Regression metrics on held-out predictions, as one JSON-ready record.

Like the classification record, values are Python numbers or ``None`` where a
metric is undefined, computed by the metric table (``_metrics.py``) and held
to scikit-learn's by a parametrised test. MAPE is the one metric whose usual
definition breaks on real data (division by a zero target); instead of
scikit-learn's epsilon, which turns each zero into a huge percentage, rows
with a zero target are left out and counted, so the reader sees how many.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from mlcycle.errors import DataError
from mlcycle.evaluate._metrics import RegressionRows, compute, metric_names

__all__ = ["check_regression", "regression_metrics"]

FloatArray = npt.NDArray[np.float64]


def _vector(name: str, values: npt.ArrayLike) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: expected numbers, {exc}") from None
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise DataError(f"{name}: expected a 1-D array, got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        shown = ", ".join(str(int(r)) for r in bad[:3])
        raise DataError(f"{name}: {bad.size} values are NaN or infinite (rows {shown})")
    return array


def check_regression(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate targets and predictions: 1-D, finite, same length, not empty."""
    y = _vector("y_true", y_true)
    pred = _vector("y_pred", y_pred)
    if y.shape != pred.shape:
        raise DataError(f"y_true has {y.shape[0]} rows but y_pred has {pred.shape[0]}")
    if y.size == 0:
        raise DataError("y_true: no rows to evaluate")
    return y, pred


def regression_metrics(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> dict[str, Any]:
    """Everything we record about a regressor on one held-out set.

    Args:
        y_true: true targets, shape (n,).
        y_pred: predictions, shape (n,).

    Returns:
        A JSON-serialisable dict: ``n``, ``mae``, ``rmse``, ``r2`` (None when
        the targets are constant, where R² is undefined), ``mape`` (a fraction,
        over rows whose target is not 0; None when there are none) and
        ``mape_ignored`` (how many rows were left out of MAPE).

    Raises:
        DataError: the arrays are not finite numbers of the same length.

    Example:
        >>> m = regression_metrics([1.0, 2.0, 0.0, 4.0], [1.5, 2.0, 0.5, 3.0])
        >>> m["mae"], m["mape"], m["mape_ignored"]
        (0.5, 0.25, 1)
    """
    y, pred = check_regression(y_true, y_pred)
    return {
        "n": int(y.size),
        **compute(metric_names("regression"), RegressionRows(y, pred)),
        "mape_ignored": int(np.count_nonzero(y == 0)),
    }
