"""Classification metrics on held-out predictions, as one JSON-ready record.

An evaluation is stored with the run and compared later (gate against the
champion, monitoring against the test-time numbers), so the result is plain
JSON: Python floats and ints, ``None`` where a metric is undefined, never NaN.
Every metric's value comes from the metric table (``_metrics.py``), the one
definition training and the bootstrap use too; a parametrised test holds each
to scikit-learn's on edge cases, so our numbers are the ones an ML engineer
can reproduce with the library they already trust.

Memory grows with the rows and the classes, never with classes squared: the
confusion matrix is recorded only up to ``CONFUSION_MAX_CLASSES`` classes
(a 20,000-class matrix is 3 GB and nobody reads it); beyond, the record
holds ``None`` and the per-class table carries the same counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from mlcycle.errors import DataError, SpecError
from mlcycle.evaluate._metrics import (
    ClassificationRows,
    calibration_error,
    compute,
    metric_names,
)

__all__ = [
    "CONFUSION_MAX_CLASSES",
    "THRESHOLD_METRICS",
    "check_classification",
    "check_labels",
    "choose_threshold",
    "classification_metrics",
    "expected_calibration_error",
    "predict_labels",
]

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]

THRESHOLD_METRICS = ("f1", "balanced_accuracy", "accuracy", "youden")
ThresholdMetric = Literal["f1", "balanced_accuracy", "accuracy", "youden"]

# Above this many classes the record holds no confusion matrix (it would be K x K).
CONFUSION_MAX_CLASSES = 100

# Probabilities from float32 softmax sum to 1 only up to rounding; anything
# further off than this is not a probability vector and is refused.
_SUM_TOLERANCE = 1e-3


def _rows(name: str, what: str, rows: npt.NDArray[Any], values: npt.NDArray[Any]) -> str:
    """``proba: values outside [0, 1] in 2 rows (row 0: [1.5, -0.5], row 7: ...)``."""
    shown = ", ".join(
        f"row {int(r)}: {np.asarray(v).tolist()!r}"
        for r, v in zip(rows[:3], values[:3], strict=True)
    )
    more = ", ..." if rows.size > 3 else ""
    return f"{name}: {what} in {rows.size} row{'s' if rows.size != 1 else ''} ({shown}{more})"


def check_labels(y_true: npt.ArrayLike, n_classes: int, name: str = "y_true") -> IntArray:
    """Return ``y_true`` as 1-D class indices in ``0..n_classes-1``, or raise DataError."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise DataError(f"{name}: expected a 1-D array of class indices, got shape {y.shape}")
    if y.size and y.dtype.kind == "f":
        integral = np.isfinite(y) & (y == np.round(y))
        if not integral.all():
            bad = np.flatnonzero(~integral)
            raise DataError(_rows(name, "values that are not class indices", bad, y[bad]))
    elif y.size and y.dtype.kind not in "iub":
        raise DataError(f"{name}: expected integer class indices, got dtype {y.dtype}")
    labels = y.astype(np.intp)
    outside = (labels < 0) | (labels >= n_classes)
    if outside.any():
        bad = np.flatnonzero(outside)
        raise DataError(_rows(name, f"class indices outside 0..{n_classes - 1}", bad, y[bad]))
    return labels


def check_classification(
    y_true: npt.ArrayLike, proba: npt.ArrayLike, classes: Sequence[str]
) -> tuple[IntArray, FloatArray, list[str]]:
    """Validate one classification evaluation's inputs and return them as arrays.

    Rows of ``proba`` must sum to 1 up to float32 rounding. They are returned
    as given, not renormalised: dividing each row by its own sum moves equal
    scores of different rows apart by an ulp, which turns ties into wins and
    losses in ROC AUC. The metrics that need exact sums (log loss) normalise
    for themselves.
    """
    names = [str(c) for c in classes]
    if len(names) < 2:
        raise SpecError(f"classes: expected at least 2 class names, got {names!r}")
    if len(set(names)) != len(names):
        raise SpecError(f"classes: names must be distinct, got {names!r}")
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(names):
        raise DataError(
            f"proba: expected shape (n, {len(names)}) for {len(names)} classes, got {p.shape}"
        )
    y = check_labels(y_true, len(names))
    if y.shape[0] != p.shape[0]:
        raise DataError(f"y_true has {y.shape[0]} rows but proba has {p.shape[0]}")
    if y.size == 0:
        raise DataError("y_true: no rows to evaluate")
    bad = ~np.isfinite(p).all(axis=1) | (p < 0).any(axis=1) | (p > 1).any(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(_rows("proba", "probabilities outside [0, 1]", rows, p[rows]))
    sums = p.sum(axis=1)
    off = np.abs(sums - 1.0) > _SUM_TOLERANCE
    if off.any():
        rows = np.flatnonzero(off)
        raise DataError(_rows("proba", "row sums other than 1", rows, sums[rows]))
    return y, p, names


def predict_labels(proba: FloatArray, threshold: float | None = None) -> IntArray:
    """Class predictions: argmax, or for binary ``P(classes[1]) >= threshold``."""
    if threshold is None:
        return np.asarray(proba.argmax(axis=1), dtype=np.intp)
    if proba.shape[1] != 2:
        raise SpecError(
            f"threshold: only applies to binary classification, got {proba.shape[1]} classes"
        )
    if not 0.0 <= threshold <= 1.0:
        raise SpecError(f"threshold: {threshold!r} is not in [0, 1]")
    return (proba[:, 1] >= threshold).astype(np.intp)


def expected_calibration_error(
    y_true: npt.ArrayLike, proba: npt.ArrayLike, *, n_bins: int = 15
) -> float:
    """Expected calibration error of the top-label confidence.

    Confidence is the largest probability of each row and a row counts as
    correct when its argmax is the true class (so for binary this is the
    calibration of the probabilities themselves, independent of any decision
    threshold). Rows fall into ``n_bins`` equal-width bins over (0, 1], each
    bin ``(lo, hi]``; the ECE is the row-weighted mean over bins of
    ``|accuracy - mean confidence|`` (Guo et al., 2017). A model whose 80 %
    predictions are right 80 % of the time scores 0.

    Args:
        y_true: true class indices, shape (n,).
        proba: class probabilities, shape (n, K).
        n_bins: number of equal-width confidence bins.

    Returns:
        The ECE, between 0 and 1.

    Example:
        >>> round(expected_calibration_error([0, 1], [[0.9, 0.1], [0.6, 0.4]]), 3)
        0.35
    """
    if n_bins < 1:
        raise SpecError(f"n_bins: {n_bins!r} is not >= 1")
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2:
        raise DataError(f"proba: expected shape (n, K), got {p.shape}")
    y = check_labels(y_true, p.shape[1])
    if y.shape[0] != p.shape[0] or y.size == 0:
        raise DataError(f"y_true has {y.shape[0]} rows but proba has {p.shape[0]}")
    return calibration_error(y, p, n_bins)


def classification_metrics(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    classes: Sequence[str],
    *,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Everything we record about a classifier on one held-out set.

    Label metrics (accuracy, precision, ...) use the argmax prediction, or for
    binary problems with ``threshold`` the rule ``P(classes[1]) >= threshold``,
    so the numbers describe the decision the deployed model will make. Ranking
    and probability metrics (ROC AUC, PR AUC, log loss, ECE) use ``proba``.
    ROC AUC and PR AUC (average precision) take ``classes[1]`` as the positive
    class for binary problems and are one-vs-rest macro averages otherwise,
    leaving out classes absent from ``y_true`` (None when none is left).
    Macro precision, recall and F1 average over the classes present in the
    truth or the predictions, as scikit-learn's do.

    Args:
        y_true: true class indices ``0..K-1``, shape (n,).
        proba: predicted probabilities, shape (n, K), also for binary (K=2).
        classes: the K class names, in column order.
        threshold: binary only; the decision threshold on ``P(classes[1])``.

    Returns:
        A JSON-serialisable dict with ``n``, ``accuracy``, ``balanced_accuracy``,
        ``precision_macro``, ``recall_macro``, ``f1_macro``, ``roc_auc``,
        ``pr_auc``, ``log_loss``, ``ece``, ``threshold``, ``confusion_matrix``
        (rows true, columns predicted; None above ``CONFUSION_MAX_CLASSES``
        classes) and ``per_class`` (name -> precision, recall, f1, support,
        roc_auc, pr_auc).

    Raises:
        DataError: the arrays have the wrong shape or values.
        SpecError: ``classes`` or ``threshold`` is invalid.

    Example:
        >>> m = classification_metrics([0, 1, 1], [[0.8, 0.2], [0.4, 0.6], [0.7, 0.3]], ["no", "yes"])
        >>> m["accuracy"], m["roc_auc"], m["confusion_matrix"]
        (0.6666666666666666, 1.0, [[1, 0], [1, 1]])
    """
    y, p, names = check_classification(y_true, proba, classes)
    k = len(names)
    rows = ClassificationRows(y, predict_labels(p, threshold), p, k)
    support = rows.counts[1]
    per_class = rows.per_class
    roc, pr = (
        [None if np.isnan(v) else float(v) for v in rows.per_class_ranking(kernel)]
        for kernel in ("roc_auc", "pr_auc")
    )
    matrix = None
    if k <= CONFUSION_MAX_CLASSES:
        cells = np.bincount(y * k + rows.pred, minlength=k * k)
        matrix = cells.reshape(k, k).tolist()
    return {
        "n": int(y.size),
        **compute(metric_names("classification"), rows),
        "threshold": None if threshold is None else float(threshold),
        "confusion_matrix": matrix,
        "per_class": {
            name: {
                "precision": float(per_class["precision"][i]),
                "recall": float(per_class["recall"][i]),
                "f1": float(per_class["f1"][i]),
                "support": int(support[i]),
                "roc_auc": roc[i],
                "pr_auc": pr[i],
            }
            for i, name in enumerate(names)
        },
    }


def choose_threshold(
    y_true: npt.ArrayLike, proba_pos: npt.ArrayLike, metric: str = "f1"
) -> tuple[float, float]:
    """The decision threshold on validation data that maximises ``metric``.

    Argmax (threshold 0.5) is rarely the best operating point for imbalanced
    classes; pick the threshold on validation data, then report test metrics
    with ``classification_metrics(..., threshold=t)``. Candidates are the
    distinct scores (predict positive when ``score >= t``); the confusion
    counts of all of them come from one sort and a cumulative sum. Ties go to
    the highest threshold, i.e. the fewest positive predictions.

    Args:
        y_true: binary labels, 1 for the positive class (``classes[1]``).
        proba_pos: the predicted probability of the positive class, shape (n,).
        metric: one of ``f1``, ``balanced_accuracy``, ``accuracy``, ``youden``
            (true positive rate minus false positive rate).

    Returns:
        ``(threshold, best value of metric)``.

    Raises:
        SpecError: ``metric`` is not one of the names above.
        DataError: the arrays are malformed, or ``y_true`` lacks a class.

    Example:
        >>> choose_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], metric="accuracy")
        (0.8, 0.75)
    """
    if metric not in THRESHOLD_METRICS:
        raise SpecError(f"metric: {metric!r} is not one of {', '.join(THRESHOLD_METRICS)}")
    scores = np.asarray(proba_pos, dtype=np.float64)
    y = check_labels(y_true, 2)
    if scores.ndim != 1 or scores.shape != y.shape:
        raise DataError(f"proba_pos: expected shape {y.shape} like y_true, got {scores.shape}")
    if not np.isfinite(scores).all():
        raise DataError("proba_pos: contains NaN or infinite values")
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise DataError("y_true: choosing a threshold needs both classes, got only one")

    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    # The last row of each run of equal scores: predicting positive down to it
    # is the threshold "score >= ranked[end]".
    ends = np.r_[np.flatnonzero(np.diff(ranked) != 0), ranked.size - 1]
    tp = np.cumsum(y[order])[ends].astype(np.float64)
    fp = (ends + 1) - tp
    tpr, fpr = tp / n_pos, fp / n_neg
    values = {
        "f1": lambda: 2 * tp / (2 * tp + fp + (n_pos - tp)),
        "balanced_accuracy": lambda: (tpr + 1 - fpr) / 2,
        "accuracy": lambda: (tp + n_neg - fp) / y.size,
        "youden": lambda: tpr - fpr,
    }[metric]()
    best = int(np.argmax(values))
    return float(ranked[ends[best]]), float(values[best])
