"""The metric table: every metric mlcycle records, defined once.

Each :class:`Metric` has a name, the task family it applies to, its
direction, whether it is in the target's units, and one formula. Training
(per-epoch validation, early stopping), evaluation (the test record, slices,
the report), the bootstrap, the champion/challenger gate and the monitor's
performance window look metrics up here by name, so the number that picked
the best epoch is the number evaluation reports for it and the number the
gate compares.

A formula is a function of *rows*: :class:`ClassificationRows` or
:class:`RegressionRows`, which hold either one set of rows (each row counted
once) or a block of bootstrap resamples of them (each row weighted by its
multiplicity in each resample). It returns one value per set, NaN where the
rows leave the metric undefined. The point value and the bootstrap draws of a
metric are therefore the same formula: an interval cannot drift away from its
point value because its draws were computed differently.

The label metrics (accuracy, balanced accuracy, macro precision, recall and
F1) are functions of three per-class counts: hits, true rows and predicted
rows. :func:`count_metrics` computes them from those counts along the last
axis, for one evaluation (shape ``(1, K)``) or a thousand resamples at once
(``(1000, K)``); nothing here builds a K x K matrix. Macro averages run over
the classes present in the truth or the predictions, as scikit-learn's do (a
class the rows never mention says nothing about the model); balanced accuracy
is the mean recall over the classes present in the truth, as scikit-learn's
is. ROC AUC and average precision come from :class:`~._ranking.Ranking`. Log
loss reads the true class's probability only; the expected calibration error,
which scikit-learn lacks, is ours too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from mlcycle.errors import SpecError
from mlcycle.evaluate._ranking import Kernel, Ranking, macro
from mlcycle.evaluate._task import Family

__all__ = [
    "BLOCK",
    "METRICS",
    "ClassificationRows",
    "Metric",
    "RegressionRows",
    "calibration_error",
    "compute",
    "count_metrics",
    "default_metric",
    "metric",
    "metric_names",
]

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]
_Value = TypeVar("_Value", float, FloatArray)

# Arrays built per block of resamples stay near this many entries (16 MiB of
# float64), so that memory is flat whatever the rows and classes.
BLOCK = 1 << 21


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


def _group_sums(
    groups: IntArray, values: FloatArray | None, n_groups: int, block: IntArray | None
) -> FloatArray:
    """Per set and group: the sum of ``values`` (or the row count), shape (m, n_groups).

    ``block`` holds the row indices of m resamples (None: one set, every row
    once); one ``bincount`` over offset group ids counts all of them at once.
    """
    if block is None:
        return np.bincount(groups, values, minlength=n_groups)[None].astype(np.float64)
    m = block.shape[0]
    index = (groups[block] + np.arange(m)[:, None] * n_groups).ravel()
    weights = None if values is None else values[block].ravel()
    sums = np.bincount(index, weights, minlength=m * n_groups)
    return sums.reshape(m, n_groups).astype(np.float64)


class _Rows:
    """One set of rows (``block`` None), or a block of m bootstrap resamples of them."""

    family: Family

    def __init__(self, n: int, block: IntArray | None) -> None:
        self.n = n
        self.block = block

    @property
    def sets(self) -> int:
        """How many values each formula returns: 1, or one per resample."""
        return 1 if self.block is None else int(self.block.shape[0])

    @cached_property
    def weights(self) -> FloatArray:
        """How often each row is in each set, shape (m, n)."""
        if self.block is None:
            return np.ones((1, self.n))
        offsets = np.arange(self.sets)[:, None] * self.n
        flat = np.bincount((self.block + offsets).ravel(), minlength=self.block.size)
        return flat.reshape(self.block.shape).astype(np.float64)

    def mean(self, x: npt.NDArray[Any]) -> FloatArray:
        """The mean of the per-row values ``x`` in each set, shape (m,)."""
        if self.block is None:
            return np.array([np.mean(x, dtype=np.float64)])
        mean: FloatArray = self.weights @ x.astype(np.float64) / self.n
        return mean


class ClassificationRows(_Rows):
    """Checked rows of one classification evaluation, with what several metrics share.

    ``proba`` may be None when only predicted labels exist (the running
    training accuracy); metrics that need scores then cannot be asked for.
    :meth:`resampled` gives the same rows under a block of resamples, sharing
    the per-class sorts of the scores.
    """

    family: Family = "classification"

    def __init__(
        self,
        y: IntArray,
        pred: IntArray,
        proba: FloatArray | None,
        n_classes: int,
        *,
        block: IntArray | None = None,
        ranking: Ranking | None = None,
    ) -> None:
        super().__init__(y.size, block)
        self.y = y
        self.pred = pred
        self.proba = proba
        self.n_classes = n_classes
        self._ranking = ranking
        self._per_class: dict[Kernel, FloatArray] = {}

    def resampled(self, block: IntArray) -> ClassificationRows:
        """These rows under the resamples ``block`` (row indices, shape (m, n))."""
        ranking = self.ranking if self.proba is not None else None
        return ClassificationRows(
            self.y, self.pred, self.proba, self.n_classes, block=block, ranking=ranking
        )

    def _counts(self, block: IntArray | None) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Per set and class: hits, true rows, predicted rows, each (m, K) (never K x K)."""
        k = self.n_classes
        hit = (self.y == self.pred).astype(np.float64)
        return (
            _group_sums(self.y, hit, k, block),
            _group_sums(self.y, None, k, block),
            _group_sums(self.pred, None, k, block),
        )

    @cached_property
    def counts(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """One evaluation's hits, true rows and predicted rows per class, each (K,)."""
        if self.block is not None:
            raise ValueError("per-class counts are those of one evaluation, not of resamples")
        hits, true_n, pred_n = self._counts(None)
        return hits[0], true_n[0], pred_n[0]

    @cached_property
    def labels(self) -> dict[str, FloatArray]:
        """The label metrics of each set, (m,) each; many classes split the block."""
        if self.block is None:
            return count_metrics(*(c[None] for c in self.counts))
        parts = np.array_split(self.block, max(1, -(-self.sets * self.n_classes // BLOCK)))
        values = [count_metrics(*self._counts(part)) for part in parts]
        return {name: np.concatenate([v[name] for v in values]) for name in values[0]}

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
    def ranking(self) -> Ranking:
        return self._ranking if self._ranking is not None else Ranking(self.scores)

    def _masses(self, c: int) -> tuple[FloatArray, FloatArray]:
        positive = self.y == c
        pos = self.weights * positive
        return pos, self.weights - pos

    def per_class_ranking(self, kernel: Kernel) -> FloatArray:
        """One-vs-rest ROC AUC or average precision of every class of one evaluation, (K,).

        NaN where undefined: ROC AUC needs a class both present and absent in
        ``y``, average precision needs it present.
        """
        if kernel not in self._per_class:
            classes = range(self.n_classes)
            self._per_class[kernel] = self.ranking.per_class(kernel, self._masses, classes)[0]
        return self._per_class[kernel]

    def ranked(self, kernel: Kernel) -> FloatArray:
        """Binary: the positive class's (``classes[1]``); else the macro over defined classes."""
        if self.block is None:
            per_class = self.per_class_ranking(kernel)
            return macro(per_class[None, self.ranking.summarised])
        return self.ranking.summary(kernel, self._masses)


class RegressionRows(_Rows):
    """Checked targets and predictions of one regression evaluation, or resamples of them."""

    family: Family = "regression"

    def __init__(self, y: FloatArray, pred: FloatArray, *, block: IntArray | None = None) -> None:
        super().__init__(y.size, block)
        self.y = y
        self.pred = pred

    def resampled(self, block: IntArray) -> RegressionRows:
        """These rows under the resamples ``block`` (row indices, shape (m, n))."""
        return RegressionRows(self.y, self.pred, block=block)

    @cached_property
    def error(self) -> FloatArray:
        return self.pred - self.y

    @property
    def constant(self) -> npt.NDArray[np.bool_]:
        """Whether each set's targets are all equal, (m,)."""
        if self.block is None:
            return np.array([np.ptp(self.y) == 0])
        return np.asarray(np.ptp(self.y[self.block], axis=1) == 0)


def _label(name: str) -> Callable[[ClassificationRows], FloatArray]:
    def formula(rows: ClassificationRows) -> FloatArray:
        return rows.labels[name]

    return formula


def _ranked(kernel: Kernel) -> Callable[[ClassificationRows], FloatArray]:
    def formula(rows: ClassificationRows) -> FloatArray:
        return rows.ranked(kernel)

    return formula


def _log_loss(rows: ClassificationRows) -> FloatArray:
    """Mean of ``-log P(true class)``, clipped to [eps, 1 - eps] as scikit-learn clips.

    Only the true class's column is read (scikit-learn one-hot encodes the
    labels, n x K more memory). Rows from a float32 softmax sum to 1 only up
    to rounding, so each probability is divided by its row's sum first.
    """
    p = rows.scores
    true = p[np.arange(rows.n), rows.y] / p.sum(axis=1)
    eps = np.finfo(np.float64).eps
    return rows.mean(-np.log(np.clip(true, eps, 1 - eps)))


def _calibration_gaps(rows: ClassificationRows, n_bins: int = 15) -> FloatArray:
    """Expected calibration error of the top-label confidence, per set.

    Rows fall into ``n_bins`` equal-width bins ``(lo, hi]``; per bin,
    ``|acc - conf| * n_bin / n == |sum(correct) - sum(confidence)| / n``.
    """
    p = rows.scores
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == rows.y).astype(np.float64)
    inner_edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    # side="left" puts a confidence equal to an edge into the bin that edge closes.
    bins = np.searchsorted(inner_edges, confidence, side="left")
    gap = _group_sums(bins, correct - confidence, n_bins, rows.block)
    ece: FloatArray = np.abs(gap).sum(axis=1) / rows.n
    return ece


def calibration_error(y: IntArray, proba: FloatArray, n_bins: int = 15) -> float:
    """Expected calibration error of checked arrays; see ``expected_calibration_error``."""
    pred = np.asarray(proba.argmax(axis=1), dtype=np.intp)
    rows = ClassificationRows(y, pred, proba, proba.shape[1])
    return float(_calibration_gaps(rows, n_bins)[0])


def _mae(rows: RegressionRows) -> FloatArray:
    return rows.mean(np.abs(rows.error))


def _rmse(rows: RegressionRows) -> FloatArray:
    return np.sqrt(rows.mean(rows.error**2))


def _r2(rows: RegressionRows) -> FloatArray:
    """NaN on a constant target, where R² is undefined (scikit-learn forces 0 or 1)."""
    centred = rows.y - rows.y.mean()  # keeps the total sum of squares free of cancellation
    total = rows.mean(centred**2) - rows.mean(centred) ** 2
    defined = ~rows.constant & (total > 0)
    unexplained = np.divide(
        rows.mean(rows.error**2), total, out=np.full(total.shape, np.nan), where=defined
    )
    r2: FloatArray = 1.0 - unexplained
    return r2


def _mape(rows: RegressionRows) -> FloatArray:
    """Over rows whose target is not 0; NaN when there are none.

    scikit-learn divides by machine epsilon instead, turning each zero target
    into an error of about 1e15; the record counts the rows left out.
    """
    nonzero = rows.y != 0
    ratio = np.divide(np.abs(rows.error), np.abs(rows.y), out=np.zeros_like(rows.y), where=nonzero)
    share = rows.mean(nonzero)
    mape: FloatArray = np.divide(
        rows.mean(ratio), share, out=np.full(share.shape, np.nan), where=share > 0
    )
    return mape


@dataclass(frozen=True)
class Metric:
    """One metric: what it is called, what it applies to, which way is better, how to compute it.

    Attributes:
        name: the key in every record (``f1_macro``).
        family: ``classification`` or ``regression``.
        higher_is_better: the direction of improvement.
        label: how a person reads it in a report.
        formula: the value on each set of rows (:class:`ClassificationRows`
            or :class:`RegressionRows`: one evaluation, or a block of
            bootstrap resamples), shape (m,), NaN where undefined.
        needs_scores: needs probabilities, not only predicted labels.
        headline: one of the few figures a report leads with, each with an
            interval (every metric has bootstrap draws).
        target_units: in the target's own units (mae, rmse): a change is
            judged relative to the reference value, so that a limit of 0.05
            means 5 % whatever the units.
    """

    name: str
    family: Family
    higher_is_better: bool
    label: str
    formula: Callable[[Any], FloatArray]
    needs_scores: bool = False
    headline: bool = False
    target_units: bool = False

    def point(self, rows: ClassificationRows | RegressionRows) -> float | None:
        """The value on one set of rows, None where the rows leave it undefined."""
        value = float(self.formula(rows)[0])
        return value if np.isfinite(value) else None

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly better than ``b``."""
        return a > b if self.higher_is_better else a < b

    def improvement(self, before: _Value, after: _Value) -> _Value:
        """How much better ``after`` is than ``before``, positive when better (metric's units).

        Numbers or arrays of draws (paired: element by element).

        Example:
            >>> metric("rmse").improvement(10.0, 9.5), metric("accuracy").improvement(0.9, 0.8)
            (0.5, -0.09999999999999998)
        """
        return after - before if self.higher_is_better else before - after

    def relative(self, change: float, reference: float) -> float:
        """``change`` as a share of ``reference`` for metrics in the target's units, else as is.

        Example:
            >>> metric("rmse").relative(0.5, 10.0), metric("accuracy").relative(0.05, 0.9)
            (0.05, 0.05)
        """
        return change / abs(reference) if self.target_units and reference != 0 else change


def _table(*metrics: Metric) -> Mapping[str, Metric]:
    return MappingProxyType({m.name: m for m in metrics})


_C: Family = "classification"
_R: Family = "regression"

METRICS: Mapping[str, Metric] = _table(
    Metric("accuracy", _C, True, "Accuracy", _label("accuracy"), headline=True),
    Metric(
        "balanced_accuracy",
        _C,
        True,
        "Balanced accuracy",
        _label("balanced_accuracy"),
        headline=True,
    ),
    Metric("precision_macro", _C, True, "Precision (macro)", _label("precision_macro")),
    Metric("recall_macro", _C, True, "Recall (macro)", _label("recall_macro")),
    Metric("f1_macro", _C, True, "F1 (macro)", _label("f1_macro"), headline=True),
    Metric("roc_auc", _C, True, "ROC AUC", _ranked("roc_auc"), needs_scores=True, headline=True),
    Metric("pr_auc", _C, True, "PR AUC (average precision)", _ranked("pr_auc"), needs_scores=True),
    Metric("log_loss", _C, False, "Log loss", _log_loss, needs_scores=True),
    Metric("ece", _C, False, "Expected calibration error", _calibration_gaps, needs_scores=True),
    Metric("mae", _R, False, "MAE", _mae, headline=True, target_units=True),
    Metric("rmse", _R, False, "RMSE", _rmse, headline=True, target_units=True),
    Metric("r2", _R, True, "R²", _r2, headline=True),
    Metric("mape", _R, False, "MAPE (fraction)", _mape),
)

# What a family is judged on when the spec names no metric (the gate, monitoring).
_DEFAULT: Mapping[Family, str] = MappingProxyType({_C: "accuracy", _R: "rmse"})


def metric_names(family: Family, *, headline: bool | None = None) -> tuple[str, ...]:
    """The metrics of a family in table order (only the headline ones, or only the others, if asked)."""
    return tuple(
        m.name
        for m in METRICS.values()
        if m.family == family and (headline is None or m.headline == headline)
    )


def default_metric(task: str) -> str:
    """The metric a task is judged on unless the spec names one: accuracy, or rmse for regression.

    ``task`` is a task (``binary``, ``multiclass``, ``regression``) or a family.

    Example:
        >>> default_metric("binary"), default_metric("regression")
        ('accuracy', 'rmse')
    """
    return _DEFAULT["regression" if task == "regression" else "classification"]


def metric(name: str, family: Family | None = None, *, field: str = "metric") -> Metric:
    """Look a metric up by name, or raise SpecError listing the ones that exist.

    Args:
        name: the metric's name.
        family: the task family it must belong to (the error lists that
            family's metrics).
        field: what to call the value in the error (a spec field such as
            ``loop.gate.metric``).

    Example:
        >>> metric("rmse").higher_is_better
        False
        >>> metric("rmse", "classification", field="loop.gate.metric")
        Traceback (most recent call last):
        ...
        mlcycle.errors.SpecError: loop.gate.metric: 'rmse' is not a classification metric; expected one of accuracy, balanced_accuracy, precision_macro, recall_macro, f1_macro, roc_auc, pr_auc, log_loss, ece
    """
    found = METRICS.get(name)
    if found is None or (family is not None and found.family != family):
        known = metric_names(family) if family is not None else tuple(METRICS)
        kind = f"a {family} metric" if family is not None else "a metric"
        raise SpecError(f"{field}: {name!r} is not {kind}; expected one of {', '.join(known)}")
    return found


def compute(
    names: Sequence[str], rows: ClassificationRows | RegressionRows
) -> dict[str, float | None]:
    """The named metrics of one set of rows; undefined ones are None."""
    return {name: metric(name, rows.family).point(rows) for name in names}
