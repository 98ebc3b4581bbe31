"""Confidence intervals for metrics by the percentile bootstrap over rows.

A test accuracy of 0.93 on 200 rows and on 20,000 rows are different claims;
the interval says which, and the champion/challenger gate needs it to tell a
real improvement from noise. Rows are resampled with replacement, all arrays
together, and the interval is the ``alpha/2`` and ``1 - alpha/2`` quantiles of
the metric over the resamples.

Every metric of the table has vectorised draws (:func:`draws`): a block of
resamples is a matrix of row indices, and the metric's own formula evaluates
all of them at once (per-class counts by one ``bincount``, never K x K;
row multiplicities for the means and the ranking kernels). The row indices
depend only on the number of rows, ``n_boot`` and the seed, so two models
scored on the same rows with the same seed see the same resamples: the
difference of their draws is a paired bootstrap. The generic
:func:`bootstrap_ci` calls any metric once per resample, on the same indices,
so a vectorised interval equals the generic one for the same metric.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from mlcycle.errors import DataError, SpecError
from mlcycle.evaluate._metrics import (
    BLOCK,
    ClassificationRows,
    RegressionRows,
    compute,
    metric,
    metric_names,
)
from mlcycle.evaluate._point import checked_rows
from mlcycle.evaluate._task import resolve_task

__all__ = ["bootstrap_ci", "draws", "headline_with_ci", "index_chunks", "resampled_metrics"]

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]

# Exceptions a metric raises on a degenerate resample (one class only, ...).
_UNDEFINED = (ValueError, ZeroDivisionError, FloatingPointError)


def _check_params(n_boot: int, alpha: float) -> None:
    if n_boot < 1:
        raise SpecError(f"n_boot: {n_boot!r} is not >= 1")
    if not 0.0 < alpha < 1.0:
        raise SpecError(f"alpha: {alpha!r} is not in (0, 1)")


def index_chunks(n: int, n_boot: int, seed: int) -> Iterator[IntArray]:
    """Row indices of ``n_boot`` resamples of ``n`` rows, in blocks of shape (m, n)."""
    rng = np.random.default_rng(seed)
    per_block = max(1, min(n_boot, BLOCK // max(n, 1)))
    for start in range(0, n_boot, per_block):
        size = (min(per_block, n_boot - start), n)
        yield rng.integers(0, n, size=size).astype(np.intp, copy=False)


def _interval(values: FloatArray, alpha: float) -> tuple[float, float] | None:
    defined = values[np.isfinite(values)]
    if defined.size == 0:
        return None
    low, high = np.quantile(defined, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_ci(
    metric_fn: Callable[..., Any],
    *arrays: npt.ArrayLike,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of any metric of row-aligned arrays.

    Each resample draws ``n`` rows with replacement and calls
    ``metric_fn(*resampled_arrays)``. A resample on which the metric is
    undefined (it raises ValueError, or returns None or NaN, as ROC AUC does
    on a resample with one class) is skipped; warnings raised inside the
    metric are silenced, as they would repeat for every resample.

    Args:
        metric_fn: called with the resampled arrays, returns a number.
        *arrays: one or more arrays with the same number of rows.
        n_boot: number of resamples.
        alpha: 1 - confidence level (0.05 gives a 95 % interval).
        seed: seed of the resampling; the same seed gives the same interval.

    Returns:
        ``(low, high)``.

    Raises:
        DataError: the arrays are empty or of different lengths, or the
            metric is undefined on every resample.
        SpecError: ``n_boot`` or ``alpha`` is out of range.

    Example:
        >>> import numpy as np
        >>> low, high = bootstrap_ci(np.mean, np.arange(100.0), n_boot=200)
        >>> bool(low < 49.5 < high)
        True
    """
    _check_params(n_boot, alpha)
    if not arrays:
        raise DataError("bootstrap_ci: pass at least one array to resample")
    data = [np.asarray(a) for a in arrays]
    n = data[0].shape[0] if data[0].ndim else 0
    if any(a.ndim == 0 or a.shape[0] != n for a in data):
        raise DataError(f"arrays: expected the same number of rows, got {[a.shape for a in data]}")
    if n == 0:
        raise DataError("arrays: no rows to resample")
    values = np.full(n_boot, np.nan)
    why = ""  # the last reason a resample was undefined, for the error message
    i = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for block in index_chunks(n, n_boot, seed):
            for rows in block:
                try:
                    value = metric_fn(*(a[rows] for a in data))
                except _UNDEFINED as exc:
                    why = str(exc)
                else:
                    values[i] = np.nan if value is None else float(value)
                    if caught and not np.isfinite(values[i]):
                        why = str(caught[-1].message)
                caught.clear()
                i += 1
    interval = _interval(values, alpha)
    if interval is None:
        raise DataError(
            f"metric is undefined on all {n_boot} resamples"
            + (f"; last reason: {why}" if why else "")
        )
    return interval


def resampled_metrics(
    names: Sequence[str], rows: ClassificationRows | RegressionRows, n_boot: int, seed: int
) -> dict[str, FloatArray]:
    """The named metrics on each of ``n_boot`` resamples of ``rows``, NaN where undefined.

    The resamples are those of ``index_chunks(rows.n, n_boot, seed)``; each
    block goes through the metrics' formulas at once, sharing per-class sorts
    and counts between metrics.
    """
    metrics = [metric(name, rows.family) for name in names]
    parts: dict[str, list[FloatArray]] = {m.name: [] for m in metrics}
    for block in index_chunks(rows.n, n_boot, seed):
        view = rows.resampled(block)
        for m in metrics:
            parts[m.name].append(m.formula(view))
    return {name: np.concatenate(values) for name, values in parts.items()}


def draws(
    name: str,
    y_true: npt.ArrayLike,
    scores: npt.ArrayLike,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    threshold: float | None = None,
) -> FloatArray:
    """A metric of the table on each of ``n_boot`` bootstrap resamples of the rows.

    Resample ``i`` draws the same row indices for any rows of the same length
    and the same ``seed``: the draws of two models scored on the same rows
    are *paired*, and their difference is the bootstrap of the difference
    (the gate's interval), with the noise both share (hard rows, easy rows)
    cancelled.

    Args:
        name: a metric of :data:`METRICS`.
        y_true: class indices (classification) or targets (regression).
        scores: probabilities, shape (n, K), or regression predictions.
        n_boot: number of resamples.
        seed: seed of the resampling.
        threshold: binary only; the decision threshold on ``P(classes[1])``.

    Returns:
        Shape ``(n_boot,)``, NaN on resamples where the metric is undefined.

    Raises:
        SpecError: an unknown metric, or ``n_boot`` < 1.
        DataError: the arrays are malformed.

    Example:
        >>> y = np.array([0, 1, 1, 0, 1])
        >>> a = draws("accuracy", y, np.eye(2)[[0, 1, 0, 0, 1]], n_boot=4, seed=1)
        >>> b = draws("accuracy", y, np.eye(2)[[0, 1, 1, 0, 1]], n_boot=4, seed=1)
        >>> bool((b >= a).all())  # paired: b is right wherever a is
        True
    """
    _check_params(n_boot, 0.05)
    found = metric(name)
    if found.family == "regression":
        rows = checked_rows("regression", y_true, scores, None)
    else:
        p = np.asarray(scores, dtype=np.float64)
        if p.ndim != 2:
            raise DataError(f"scores: {name} needs probabilities of shape (n, K), got {p.shape}")
        classes = [str(c) for c in range(p.shape[1])]
        rows = checked_rows("classification", y_true, p, classes, threshold)
    return resampled_metrics([name], rows, n_boot, seed)[name]


def headline_with_ci(
    task: str,
    y_true: npt.ArrayLike,
    proba_or_pred: npt.ArrayLike,
    classes: Sequence[str] | None = None,
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    threshold: float | None = None,
    names: Sequence[str] | None = None,
) -> dict[str, dict[str, float | None]]:
    """The headline metrics (or the named ones) with percentile bootstrap intervals.

    Classification: accuracy, balanced_accuracy, f1_macro, roc_auc;
    regression: mae, rmse, r2 (the table's headline metrics). Values are
    those of :func:`classification_metrics` / :func:`regression_metrics`; a
    metric that is undefined on the data (ROC AUC with one class) is None
    with no interval. All resamples are evaluated at once, so 1000 resamples
    of a few thousand rows take well under a second.

    Args:
        task: ``binary``, ``multiclass``, ``classification`` or ``regression``.
        y_true: class indices (classification) or targets (regression).
        proba_or_pred: probabilities, shape (n, K), or regression predictions.
        classes: the class names; required for classification.
        n_boot: number of resamples.
        alpha: 1 - confidence level.
        seed: seed of the resampling.
        threshold: binary only; decision threshold on ``P(classes[1])``.
        names: metrics of the table to report instead of the headline ones.

    Returns:
        ``{metric: {"value": v, "low": lo, "high": hi}}``.

    Example:
        >>> h = headline_with_ci("regression", [1.0, 2.0, 3.0, 4.0], [1.1, 1.9, 3.2, 3.8])
        >>> sorted(h), round(h["mae"]["value"], 2)
        (['mae', 'r2', 'rmse'], 0.15)
    """
    _check_params(n_boot, alpha)
    family = resolve_task(task, classes)
    wanted = metric_names(family, headline=True) if names is None else tuple(names)
    for name in wanted:
        metric(name, family)
    rows = checked_rows(task, y_true, proba_or_pred, classes, threshold)
    point = compute(wanted, rows)
    defined = [name for name in wanted if point[name] is not None]
    values = resampled_metrics(defined, rows, n_boot, seed)
    result: dict[str, dict[str, float | None]] = {}
    for name in wanted:
        interval = _interval(values[name], alpha) if name in values else None
        low, high = interval if interval is not None else (None, None)
        result[name] = {"value": point[name], "low": low, "high": high}
    return result
