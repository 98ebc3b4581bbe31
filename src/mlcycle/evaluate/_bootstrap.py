"""Confidence intervals for metrics by the percentile bootstrap over rows.

A test accuracy of 0.93 on 200 rows and on 20,000 rows are different claims;
the interval says which, and the champion/challenger gate needs it to tell a
real improvement from noise. Rows are resampled with replacement, all arrays
together, and the interval is the ``alpha/2`` and ``1 - alpha/2`` quantiles of
the metric over the resamples.

The headline metrics (those the metric table marks ``bootstrap``) are
computed for all resamples at once: each block of resamples is a matrix of
row indices, from which ``bincount`` gives every resample's per-class counts
(accuracy, balanced accuracy, macro F1 by the table's own count formulas;
memory grows with the classes, never with their square) or row
multiplicities (AUC by the Mann-Whitney statistic, and the regression
metrics by matrix products). The generic :func:`bootstrap_ci` calls its
metric once per resample. Both draw the same indices for the same seed, so a
headline interval equals the generic one for the same metric.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from mlcycle.errors import DataError, SpecError
from mlcycle.evaluate._classification import (
    check_classification,
    classification_metrics,
    predict_labels,
)
from mlcycle.evaluate._metrics import auc_draws, count_metrics, metric_names, ranker
from mlcycle.evaluate._regression import check_regression, regression_metrics
from mlcycle.evaluate._task import resolve_task

__all__ = [
    "HEADLINE",
    "bootstrap_ci",
    "confusion_metrics",
    "headline_with_ci",
    "index_chunks",
]

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]

# The metrics with vectorised draws, from the metric table.
HEADLINE = {
    family: metric_names(family, bootstrap=True) for family in ("classification", "regression")
}

# Index matrices are built a block of resamples at a time, about this many
# entries each, so that memory stays flat however many rows there are.
_BLOCK = 1 << 21
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
    per_block = max(1, min(n_boot, _BLOCK // max(n, 1)))
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


def _multiplicities(block: IntArray, n: int) -> FloatArray:
    offsets = np.arange(block.shape[0])[:, None] * n
    flat = np.bincount((block + offsets).ravel(), minlength=block.size)
    return flat.reshape(block.shape).astype(np.float64)


def confusion_metrics(cm: FloatArray) -> dict[str, FloatArray]:
    """Accuracy, balanced accuracy and macro F1 of confusion matrices ``(m, K, K)``, rows true.

    The matrices may hold expected (fractional) counts, as CBPE's do. The
    formulas are the metric table's (:func:`count_metrics`).
    """
    counts = count_metrics(np.diagonal(cm, axis1=1, axis2=2), cm.sum(axis=2), cm.sum(axis=1))
    return {name: counts[name] for name in ("accuracy", "balanced_accuracy", "f1_macro")}


def _class_counts(
    y: IntArray, pred: IntArray, rows: IntArray, k: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per resample (rows of ``rows``) and class: hits, true rows, predicted rows, shape (m, K)."""
    m = rows.shape[0]
    offsets = np.arange(m)[:, None] * k
    true = (y[rows] + offsets).ravel()
    hit = (y == pred)[rows].ravel().astype(np.float64)

    def count(index: IntArray, weights: FloatArray | None = None) -> FloatArray:
        return np.bincount(index, weights, minlength=m * k).reshape(m, k).astype(np.float64)

    return count(true, hit), count(true), count((pred[rows] + offsets).ravel())


def _classification_draws(
    y: IntArray, p: FloatArray, pred: IntArray, n_boot: int, seed: int
) -> dict[str, FloatArray]:
    n, k = p.shape
    positives = [y == c for c in range(k)]
    scored = [1] if k == 2 else list(range(k))
    rankers = [ranker(p[:, c]) for c in scored]
    out: dict[str, list[FloatArray]] = {name: [] for name in HEADLINE["classification"]}
    labels = [name for name in HEADLINE["classification"] if name != "roc_auc"]
    for block in index_chunks(n, n_boot, seed):
        m = block.shape[0]
        # Per-class counts take m x K; many classes split the block (same draws).
        for part in np.array_split(block, max(1, -(-m * k // _BLOCK))):
            values = count_metrics(*_class_counts(y, pred, part, k))
            for name in labels:
                out[name].append(values[name])
        weights = _multiplicities(block, n)
        aucs = np.stack(
            [
                auc_draws(weights, order, starts, positives[c])
                for c, (order, starts) in zip(scored, rankers, strict=True)
            ],
            axis=1,
        )
        # Macro over the classes defined in that resample, as for the point value.
        defined = np.isfinite(aucs)
        n_defined = defined.sum(axis=1)
        total = np.where(defined, aucs, 0.0).sum(axis=1)
        out["roc_auc"].append(
            np.divide(total, n_defined, out=np.full(m, np.nan), where=n_defined > 0)
        )
    return {name: np.concatenate(parts) for name, parts in out.items()}


def _regression_draws(
    y: FloatArray, pred: FloatArray, n_boot: int, seed: int
) -> dict[str, FloatArray]:
    n = y.size
    err = pred - y
    centred = y - y.mean()  # keeps the total sum of squares free of cancellation
    out: dict[str, list[FloatArray]] = {name: [] for name in HEADLINE["regression"]}
    for block in index_chunks(n, n_boot, seed):
        counts = _multiplicities(block, n)
        sse = counts @ err**2
        sst = counts @ centred**2 - (counts @ centred) ** 2 / n
        constant = np.ptp(y[block], axis=1) == 0
        out["mae"].append(counts @ np.abs(err) / n)
        out["rmse"].append(np.sqrt(sse / n))
        unexplained = np.divide(sse, sst, out=np.full(sse.shape, np.nan), where=~constant)
        out["r2"].append(1 - unexplained)
    return {name: np.concatenate(parts) for name, parts in out.items()}


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
) -> dict[str, dict[str, float | None]]:
    """The headline metrics with percentile bootstrap intervals.

    Classification: accuracy, balanced_accuracy, f1_macro, roc_auc;
    regression: mae, rmse, r2. Values are those of
    :func:`classification_metrics` / :func:`regression_metrics`; a metric that
    is undefined on the data (ROC AUC with one class) is None with no interval.
    All resamples are evaluated at once, so 1000 resamples of a few thousand
    rows take well under a second.

    Args:
        task: ``binary``, ``multiclass``, ``classification`` or ``regression``.
        y_true: class indices (classification) or targets (regression).
        proba_or_pred: probabilities, shape (n, K), or regression predictions.
        classes: the class names; required for classification.
        n_boot: number of resamples.
        alpha: 1 - confidence level.
        seed: seed of the resampling.
        threshold: binary only; decision threshold on ``P(classes[1])``.

    Returns:
        ``{metric: {"value": v, "low": lo, "high": hi}}``.

    Example:
        >>> h = headline_with_ci("regression", [1.0, 2.0, 3.0, 4.0], [1.1, 1.9, 3.2, 3.8])
        >>> sorted(h), round(h["mae"]["value"], 2)
        (['mae', 'r2', 'rmse'], 0.15)
    """
    _check_params(n_boot, alpha)
    family = resolve_task(task, classes)
    if family == "classification":
        assert classes is not None  # resolve_task checked it
        y, p, names = check_classification(y_true, proba_or_pred, classes)
        point = classification_metrics(y, p, names, threshold=threshold)
        draws = _classification_draws(y, p, predict_labels(p, threshold), n_boot, seed)
    else:
        target, pred = check_regression(y_true, proba_or_pred)
        point = regression_metrics(target, pred)
        draws = _regression_draws(target, pred, n_boot, seed)
    result: dict[str, dict[str, float | None]] = {}
    for name in HEADLINE[family]:
        value = point[name]
        interval = None if value is None else _interval(draws[name], alpha)
        low, high = interval if interval is not None else (None, None)
        result[name] = {"value": value, "low": low, "high": high}
    return result
