"""Metrics per slice of the evaluation rows, e.g. per value of a sensitive attribute.

An overall accuracy of 0.9 can hide a group on which the model is at 0.7;
slicing is how evaluation (and later the fairness audit and the monitor)
finds it. A slice too small to say anything is still listed, with its row
count and a note, so that a missing group is visible instead of silently
dropped.

A numeric column with more distinct values than ``bins`` is cut into
quantile bins (about equal row counts; equal quantiles merge), labelled by
their edges, ``[lo, hi)`` and the last ``[lo, hi]``, and ordered by number:
85 one-row slices sorted as text say nothing. Other columns give one slice
per value (numbers ordered by number, text by text).
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

__all__ = ["BINS", "MISSING", "metrics_by_slice"]

MISSING = "(missing)"
BINS = 4


def _key(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return str(value)


def _numbers(raw: npt.NDArray[Any]) -> npt.NDArray[np.float64] | None:
    """The column as floats (NaN where missing) if every present value is a number, else None."""
    if raw.dtype.kind in "iuf":
        return raw.astype(np.float64)
    if raw.dtype.kind != "O":
        return None
    present = [v for v in raw.tolist() if v is not None]
    if not present or not all(
        isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
        for v in present
    ):
        return None
    return np.array([np.nan if v is None else float(v) for v in raw.tolist()], dtype=np.float64)


def _number(value: float, integral: bool) -> str:
    return str(int(value)) if integral and value.is_integer() else f"{value:.6g}"


def _edges_text(edges: npt.NDArray[np.float64]) -> list[str]:
    """The shortest formatting (4 significant digits or more) that keeps the edges apart."""
    for digits in range(4, 18):
        text = [f"{e:.{digits}g}" for e in edges]
        if len(set(text)) == len(text):
            return text
    return [repr(float(e)) for e in edges]


def _groups(
    raw: npt.NDArray[Any], bins: int
) -> tuple[list[str], npt.NDArray[np.intp], list[list[float] | None]]:
    """Slice labels in display order, each row's slice, and each slice's bin edges (or None)."""
    numbers = _numbers(raw)
    if numbers is None:
        keys, inverse = np.unique(
            np.array([_key(v) for v in raw.tolist()], dtype=str), return_inverse=True
        )
        return keys.tolist(), inverse.astype(np.intp), [None] * len(keys)
    missing = np.isnan(numbers)
    present = numbers[~missing]
    labels: list[str] = [MISSING] if missing.any() else []
    spans: list[list[float] | None] = [None] if missing.any() else []
    codes = np.zeros(numbers.size, dtype=np.intp)
    first = len(labels)
    distinct = np.unique(present)
    if distinct.size <= bins:
        integral = bool(raw.dtype.kind in "iu" or np.all(present == np.round(present)))
        labels += [_number(float(v), integral) for v in distinct]
        spans += [None] * distinct.size
        codes[~missing] = first + np.searchsorted(distinct, present)
    else:
        edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, bins + 1)))
        text = _edges_text(edges)
        last = edges.size - 2
        labels += [f"[{text[i]}, {text[i + 1]}{']' if i == last else ')'}" for i in range(last + 1)]
        spans += [[float(edges[i]), float(edges[i + 1])] for i in range(last + 1)]
        # Row in bin i when edges[i] <= v < edges[i + 1]; the maximum joins the last bin.
        codes[~missing] = first + np.minimum(
            np.searchsorted(edges, present, side="right") - 1, last
        )
    return labels, codes, spans


def metrics_by_slice(
    y_true: npt.ArrayLike,
    y_pred_or_proba: npt.ArrayLike,
    slice_values: npt.ArrayLike | Sequence[Any],
    task: str,
    classes: Sequence[str] | None = None,
    min_rows: int = 10,
    *,
    threshold: float | None = None,
    bins: int = BINS,
) -> dict[str, dict[str, Any]]:
    """The evaluation metrics computed separately on each slice of the rows.

    Args:
        y_true: class indices (classification) or targets (regression).
        y_pred_or_proba: probabilities, shape (n, K), or regression predictions.
        slice_values: the slicing column, one value per row. Numbers with
            more than ``bins`` distinct values are cut into quantile bins;
            other values are grouped by their string form. None/NaN form the
            slice ``"(missing)"``.
        task: ``binary``, ``multiclass``, ``classification`` or ``regression``.
        classes: the class names; required for classification.
        min_rows: slices with fewer rows get only ``n`` and a ``note``.
        threshold: binary only; decision threshold on ``P(classes[1])``.
        bins: how many quantile bins a many-valued numeric column is cut into.

    Returns:
        ``{slice: metrics}``, ordered by slice (``(missing)`` first, bins and
        numbers by number); each metrics dict is what
        :func:`classification_metrics` or :func:`regression_metrics` returns on
        that slice's rows (so it carries ``n``), and a bin's also carries
        ``bin``: its ``[low, high]`` edges.

    Example:
        >>> by = metrics_by_slice([1.0, 2.0, 3.0, 5.0], [1.0, 2.5, 3.0, 4.0],
        ...                       ["a", "a", "b", "b"], "regression", min_rows=2)
        >>> {s: m["mae"] for s, m in by.items()}
        {'a': 0.25, 'b': 0.5}
    """
    if min_rows < 1:
        raise SpecError(f"min_rows: {min_rows!r} is not >= 1")
    if bins < 2:
        raise SpecError(f"bins: {bins!r} is not >= 2")
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
    keys, codes, spans = _groups(raw, bins)
    result: dict[str, dict[str, Any]] = {}
    for code, (label, span) in enumerate(zip(keys, spans, strict=True)):
        rows = codes == code
        n = int(rows.sum())
        if n < min_rows:
            result[label] = {"n": n, "note": f"fewer than {min_rows} rows; metrics not computed"}
        else:
            result[label] = score(rows)
        if span is not None:
            result[label]["bin"] = span
    return result
