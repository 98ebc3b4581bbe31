"""The metric table: every metric mlcycle records, defined once.

Each :class:`Metric` has a name, the task family it applies to, its
direction and its point formula. Training (per-epoch validation, early
stopping), evaluation (the test record, slices, bootstrap intervals, the
report) look metrics up here by name, so the number that picked the best
epoch is the number evaluation reports for it.

The label metrics (accuracy, balanced accuracy, macro precision, recall and
F1) are functions of three per-class counts: hits, true rows and predicted
rows. :func:`count_metrics` computes them from those counts along the last
axis, so one formula serves a single evaluation (shape ``(K,)``) and a
thousand bootstrap resamples at once (shape ``(1000, K)``); nothing here
builds a K x K matrix. Macro averages run over the classes present in the
truth or the predictions, as scikit-learn's do (a class the rows never
mention says nothing about the model); balanced accuracy is the mean recall
over the classes present in the truth, as scikit-learn's is.

ROC AUC and average precision (one-vs-rest per class) are weighted kernels
over the scores sorted once per class, with ties grouped: the point value
weighs every row once, the bootstrap weighs rows by their multiplicity in
each resample, so both come from the same code. Per class they equal
scikit-learn's ``roc_auc_score`` and ``average_precision_score`` (ties
included), at one sort per class instead of scikit-learn's per-call checks,
which cost seconds for a thousand classes. Log loss reads the true class's
probability only; the expected calibration error, which scikit-learn lacks,
is ours too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from mlcycle.errors import SpecError
from mlcycle.evaluate._task import Family

__all__ = [
    "METRICS",
    "ClassificationRows",
    "Metric",
    "RegressionRows",
    "auc_draws",
    "average_precision_draws",
    "calibration_error",
    "compute",
    "count_metrics",
    "metric",
    "metric_names",
    "ranker",
]

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]


def count_metrics(
    hits: FloatArray, true_n: FloatArray, pred_n: FloatArray
) -> dict[str, FloatArray]:
    """The label metrics from per-class counts along the last axis.

    Args:
        hits: rows of each class predicted as that class.
        true_n: rows whose true class is each class (the support).
        pred_n: rows predicted as each class.

    Counts may be fractional (expected counts, as CBPE's are). Returns
    accuracy, balanced accuracy and macro precision, recall and F1, each
    with the counts' leading shape.

    Example:
        >>> m = count_metrics(np.array([2.0, 1, 0]), np.array([2.0, 2, 0]), np.array([2.0, 1, 1]))
        >>> round(float(m["f1_macro"]), 4), float(m["balanced_accuracy"])
        (0.5556, 0.75)
    """
    present = true_n > 0
    seen = present | (pred_n > 0)
    recall = np.divide(hits, true_n, out=np.zeros_like(hits), where=present)
    precision = np.divide(hits, pred_n, out=np.zeros_like(hits), where=pred_n > 0)
    both = true_n + pred_n
    f1 = np.divide(2 * hits, both, out=np.zeros_like(hits), where=both > 0)
    n_seen = np.maximum(seen.sum(axis=-1), 1)
    return {
        "accuracy": hits.sum(axis=-1) / true_n.sum(axis=-1),
        "balanced_accuracy": recall.sum(axis=-1) / np.maximum(present.sum(axis=-1), 1),
        "precision_macro": precision.sum(axis=-1) / n_seen,
        "recall_macro": recall.sum(axis=-1) / n_seen,
        "f1_macro": f1.sum(axis=-1) / n_seen,
    }


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if np.isfinite(number) else None


def ranker(score: FloatArray) -> tuple[IntArray, IntArray]:
    """Sort order of ``score`` (ascending) and where each run of equal scores starts in it."""
    order = np.argsort(score, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(score[order])) + 1].astype(np.intp)
    return order, starts


def _grouped(
    counts: FloatArray, order: IntArray, starts: IntArray, positive: npt.NDArray[np.bool_]
) -> tuple[FloatArray, FloatArray]:
    """Weighted positives and negatives per group of equal scores, ascending, shape (m, G)."""
    weights = counts[:, order]
    pos_sorted = positive[order]
    pos = np.add.reduceat(weights * pos_sorted, starts, axis=1)
    neg = np.add.reduceat(weights * ~pos_sorted, starts, axis=1)
    return pos, neg


def auc_draws(
    counts: FloatArray, order: IntArray, starts: IntArray, positive: npt.NDArray[np.bool_]
) -> FloatArray:
    """ROC AUC for each row of ``counts`` (row weights, shape (m, n)), NaN where undefined.

    AUC is the chance that a random positive scores above a random negative,
    ties counting half; with scores grouped into distinct values that is
    ``sum_g pos_g * (neg_below_g + neg_g / 2) / (P * N)``.
    """
    pos, neg = _grouped(counts, order, starts, positive)
    neg_below = np.cumsum(neg, axis=1) - neg
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    wins = (pos * (neg_below + neg / 2)).sum(axis=1)
    auc: FloatArray = np.divide(wins, pairs, out=np.full(pairs.shape, np.nan), where=pairs > 0)
    return auc


def average_precision_draws(
    counts: FloatArray, order: IntArray, starts: IntArray, positive: npt.NDArray[np.bool_]
) -> FloatArray:
    """Average precision for each row of ``counts``, NaN where there is no positive.

    scikit-learn's definition: thresholds at the distinct scores, from the
    highest down, ``AP = sum_g (R_g - R_{g-1}) P_g``; the recall step of a
    group is its share of the positives, its precision that of every row
    scoring at least as high.
    """
    pos, neg = _grouped(counts, order, starts, positive)
    tp = np.cumsum(pos[:, ::-1], axis=1)[:, ::-1]  # rows scoring >= each group's score
    fp = np.cumsum(neg[:, ::-1], axis=1)[:, ::-1]
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    total = pos.sum(axis=1)
    ap: FloatArray = np.divide(
        (pos * precision).sum(axis=1), total, out=np.full(total.shape, np.nan), where=total > 0
    )
    return ap


class ClassificationRows:
    """Checked rows of one classification evaluation, with what several metrics share.

    ``proba`` may be None when only predicted labels exist (the running
    training accuracy); metrics that need scores then cannot be asked for.
    """

    def __init__(
        self, y: IntArray, pred: IntArray, proba: FloatArray | None, n_classes: int
    ) -> None:
        self.y = y
        self.pred = pred
        self.proba = proba
        self.n_classes = n_classes

    @cached_property
    def counts(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Per class: hits, true rows, predicted rows (O(n + K), never K x K)."""
        k = self.n_classes
        hit = self.y == self.pred
        return (
            np.bincount(self.y[hit], minlength=k).astype(np.float64),
            np.bincount(self.y, minlength=k).astype(np.float64),
            np.bincount(self.pred, minlength=k).astype(np.float64),
        )

    @cached_property
    def labels(self) -> dict[str, float]:
        return {name: float(v) for name, v in count_metrics(*self.counts).items()}

    @cached_property
    def per_class(self) -> dict[str, FloatArray]:
        """Precision, recall and F1 of each class, 0 where undefined (``zero_division=0``)."""
        hits, true_n, pred_n = self.counts
        both = true_n + pred_n
        return {
            "precision": np.divide(hits, pred_n, out=np.zeros_like(hits), where=pred_n > 0),
            "recall": np.divide(hits, true_n, out=np.zeros_like(hits), where=true_n > 0),
            "f1": np.divide(2 * hits, both, out=np.zeros_like(hits), where=both > 0),
        }

    @property
    def scores(self) -> FloatArray:
        if self.proba is None:
            raise SpecError("this metric needs predicted probabilities, only labels were given")
        return self.proba

    @cached_property
    def ranking(self) -> tuple[list[float | None], list[float | None]]:
        """One-vs-rest ROC AUC and average precision per class, None where undefined.

        ROC AUC needs a class both present and absent in ``y``; average
        precision needs it present.
        """
        p = self.scores
        ones = np.ones((1, self.y.size))
        roc: list[float | None] = []
        pr: list[float | None] = []
        for c in range(self.n_classes):
            order, starts = ranker(p[:, c])
            positive = self.y == c
            roc.append(_finite(auc_draws(ones, order, starts, positive)[0]))
            pr.append(_finite(average_precision_draws(ones, order, starts, positive)[0]))
        return roc, pr

    def ranked(self, which: int) -> float | None:
        """Binary: the positive class's (``classes[1]``); else the macro over defined classes."""
        values = self.ranking[which]
        if self.n_classes == 2:
            return values[1]
        defined = [v for v in values if v is not None]
        return float(np.mean(defined)) if defined else None


class RegressionRows:
    """Checked targets and predictions of one regression evaluation."""

    def __init__(self, y: FloatArray, pred: FloatArray) -> None:
        self.y = y
        self.pred = pred

    @cached_property
    def error(self) -> FloatArray:
        return self.pred - self.y


def _log_loss(rows: ClassificationRows) -> float:
    """Mean of ``-log P(true class)``, clipped to [eps, 1 - eps] as scikit-learn clips.

    Only the true class's column is read (scikit-learn one-hot encodes the
    labels, n x K more memory). Rows from a float32 softmax sum to 1 only up
    to rounding, so each probability is divided by its row's sum first.
    """
    p = rows.scores
    true = p[np.arange(rows.y.size), rows.y] / p.sum(axis=1)
    eps = np.finfo(np.float64).eps
    return float(-np.log(np.clip(true, eps, 1 - eps)).mean())


def calibration_error(y: IntArray, proba: FloatArray, n_bins: int = 15) -> float:
    """Expected calibration error of checked arrays; see ``expected_calibration_error``."""
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(np.float64)
    inner_edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    # side="left" puts a confidence equal to an edge into the bin that edge closes.
    bins = np.searchsorted(inner_edges, confidence, side="left")
    # Per bin, |acc - conf| * n_bin / n == |sum(correct) - sum(confidence)| / n.
    gap = np.bincount(bins, weights=correct - confidence, minlength=n_bins)
    return float(np.abs(gap).sum() / y.size)


def _ece(rows: ClassificationRows) -> float:
    return calibration_error(rows.y, rows.scores)


def _r2(rows: RegressionRows) -> float | None:
    """None on a constant target, where R² is undefined (scikit-learn forces 0 or 1)."""
    centred = rows.y - rows.y.mean()
    total = float(centred @ centred)
    if np.ptp(rows.y) == 0 or total == 0:
        return None
    return 1.0 - float(rows.error @ rows.error) / total


def _mape(rows: RegressionRows) -> float | None:
    """Over rows whose target is not 0; None when there are none.

    scikit-learn divides by machine epsilon instead, turning each zero target
    into an error of about 1e15; the record counts the rows left out.
    """
    nonzero = rows.y != 0
    if not nonzero.any():
        return None
    return float(np.mean(np.abs(rows.error[nonzero]) / np.abs(rows.y[nonzero])))


@dataclass(frozen=True)
class Metric:
    """One metric: what it is called, what it applies to, which way is better, how to compute it.

    Attributes:
        name: the key in every record (``f1_macro``).
        family: ``classification`` or ``regression``.
        higher_is_better: the direction of improvement.
        label: how a person reads it in a report.
        point: the value on one set of rows (:class:`ClassificationRows` or
            :class:`RegressionRows`), None where the rows leave it undefined.
        needs_scores: needs probabilities, not only predicted labels.
        bootstrap: has vectorised bootstrap draws (the headline metrics).
    """

    name: str
    family: Family
    higher_is_better: bool
    label: str
    point: Callable[[Any], float | None]
    needs_scores: bool = False
    bootstrap: bool = False

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly better than ``b``."""
        return a > b if self.higher_is_better else a < b


def _label(name: str) -> Callable[[ClassificationRows], float]:
    def point(rows: ClassificationRows) -> float:
        return rows.labels[name]

    return point


def _mean_abs(rows: RegressionRows) -> float:
    return float(np.mean(np.abs(rows.error)))


def _root_mean_sq(rows: RegressionRows) -> float:
    return float(np.sqrt(np.mean(rows.error**2)))


def _table(*metrics: Metric) -> Mapping[str, Metric]:
    return MappingProxyType({m.name: m for m in metrics})


_C: Family = "classification"
_R: Family = "regression"

METRICS: Mapping[str, Metric] = _table(
    Metric("accuracy", _C, True, "Accuracy", _label("accuracy"), bootstrap=True),
    Metric(
        "balanced_accuracy",
        _C,
        True,
        "Balanced accuracy",
        _label("balanced_accuracy"),
        bootstrap=True,
    ),
    Metric("precision_macro", _C, True, "Precision (macro)", _label("precision_macro")),
    Metric("recall_macro", _C, True, "Recall (macro)", _label("recall_macro")),
    Metric("f1_macro", _C, True, "F1 (macro)", _label("f1_macro"), bootstrap=True),
    Metric(
        "roc_auc", _C, True, "ROC AUC", lambda r: r.ranked(0), needs_scores=True, bootstrap=True
    ),
    Metric(
        "pr_auc", _C, True, "PR AUC (average precision)", lambda r: r.ranked(1), needs_scores=True
    ),
    Metric("log_loss", _C, False, "Log loss", _log_loss, needs_scores=True),
    Metric("ece", _C, False, "Expected calibration error", _ece, needs_scores=True),
    Metric("mae", _R, False, "MAE", _mean_abs, bootstrap=True),
    Metric("rmse", _R, False, "RMSE", _root_mean_sq, bootstrap=True),
    Metric("r2", _R, True, "R²", _r2, bootstrap=True),
    Metric("mape", _R, False, "MAPE (fraction)", _mape),
)


def metric_names(family: Family, *, bootstrap: bool | None = None) -> tuple[str, ...]:
    """The metrics of a family in table order (only those with bootstrap draws if asked)."""
    return tuple(
        m.name
        for m in METRICS.values()
        if m.family == family and (bootstrap is None or m.bootstrap == bootstrap)
    )


def metric(name: str, family: Family | None = None) -> Metric:
    """Look a metric up by name, or raise SpecError listing what exists.

    Example:
        >>> metric("rmse").higher_is_better
        False
    """
    found = METRICS.get(name)
    if found is None or (family is not None and found.family != family):
        known = metric_names(family) if family is not None else tuple(METRICS)
        where = f" for {family}" if family is not None else ""
        raise SpecError(f"metric {name!r} is not one of {', '.join(known)}{where}")
    return found


def compute(
    names: Sequence[str], rows: ClassificationRows | RegressionRows
) -> dict[str, float | None]:
    """The named metrics of ``rows``; undefined ones are None."""
    family: Family = "classification" if isinstance(rows, ClassificationRows) else "regression"
    return {name: metric(name, family).point(rows) for name in names}
