"""Bias metrics of a facet against the rest, from SageMaker Clarify's published definitions.

A *facet* ``d`` is a group of rows (``afam == "yes"``); ``a`` is every other
row. Pre-training metrics look at the labels alone (how the data treats the
facet); post-training metrics compare the model's answers with the labels.
Outcomes are one-vs-rest: a label or prediction is *positive* (accepted,
``1``) when it is the positive class and negative (``0``) otherwise. Signs
follow Clarify: a positive difference is a bias against ``d``, except CI
(positive when ``d`` is the smaller facet) and DI (a ratio; 1 is parity).

Every metric is a function of a :class:`Tally`: the count of rows in each
cell of facet × true class × predicted positive × counterpart positive ×
stratum. Counts are all these metrics need, so the bootstrap resamples the
counts (a multinomial draw of ``n`` rows over the cells is exactly a row
bootstrap) and every metric evaluates all resamples at once along the
tally's leading axes, with no Python loop per resample.

A quantity with a zero denominator (DI when no row of ``a`` is predicted
positive, TE without false positives, KL when ``d`` lacks a label ``a`` has)
is undefined: NaN here, ``None`` in the audit's JSON.

The metric keys (``"DI"``, ``"DPPL"``, ...) are stable: the audit's JSON,
its report and the loop's gate look metrics up by them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mlcycle.errors import DataError, SpecError

__all__ = [
    "BIAS_METRICS",
    "POST_TRAINING",
    "PRE_TRAINING",
    "BiasMetric",
    "Tally",
    "accuracy_difference",
    "class_imbalance",
    "conditional_demographic_disparity_labels",
    "conditional_demographic_disparity_predicted",
    "difference_in_acceptance_rates",
    "difference_in_conditional_acceptance",
    "difference_in_conditional_rejection",
    "difference_in_positive_proportions_labels",
    "difference_in_positive_proportions_predicted",
    "difference_in_rejection_rates",
    "disparate_impact",
    "facet_rates",
    "flip_test",
    "generalized_entropy",
    "jensen_shannon",
    "kl_divergence",
    "kolmogorov_smirnov",
    "lp_norm",
    "recall_difference",
    "specificity_difference",
    "total_variation_distance",
    "treatment_equality",
]

Floats = NDArray[np.float64]

# Axes of Tally.cells, counted from the end so that leading (bootstrap) axes are free.
_FACET, _TRUE, _PRED, _PAIR, _STRATUM = -5, -4, -3, -2, -1
_A, _D = 0, 1


def _div(num: ArrayLike, den: ArrayLike) -> Floats:
    """``num / den``, NaN where ``den`` is 0."""
    n, d = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d != 0, n / np.where(d != 0, d, 1.0), np.nan)


@dataclass(frozen=True)
class Tally:
    """Row counts by facet × true class × predicted positive × counterpart positive × stratum.

    Attributes:
        cells: Counts, shape ``(..., 2, K, 2, 2, S)``: facet (0 = ``a``, the rest;
            1 = ``d``, the facet), the true class (K classes), whether the model
            predicted the positive class, whether the row's counterpart (its
            counterfactual twin in facet ``a``, for the flip test) was predicted
            positive, and the stratum (for the conditional demographic
            disparities). Leading axes hold bootstrap resamples.
        positive: The index of the positive class among the K classes.
    """

    cells: Floats
    positive: int

    @classmethod
    def of(
        cls,
        facet: ArrayLike,
        labels: ArrayLike,
        *,
        positive: Any,
        classes: Sequence[Any] | None = None,
        predicted: ArrayLike | None = None,
        counterpart: ArrayLike | None = None,
        strata: ArrayLike | None = None,
    ) -> Tally:
        """Count rows.

        Args:
            facet: True (or 1) for the rows of facet ``d``, False for the rest.
            labels: Each row's true class.
            positive: The positive (favourable) class.
            classes: Every class, in a fixed order (default: the sorted distinct labels).
            predicted: Each row's predicted class (default: its label, for data
                without a model: the pre-training metrics need none).
            counterpart: Each row's counterpart's predicted class: for a row of
                ``d``, what the model answers for its counterfactual twin in ``a``
                (default: its own prediction, so the flip test is 0).
            strata: Each row's stratum for CDDL and CDDPL (default: one stratum).

        Raises:
            DataError: arrays of different lengths, a label that is not a class,
                or a positive class that is not among the classes.

        Example:
            >>> t = Tally.of([1, 1, 0, 0], ["y", "n", "y", "y"], positive="y")
            >>> t.cells.shape, float(t.cells.sum())
            ((2, 2, 2, 2, 1), 4.0)
        """
        d = np.asarray(facet).astype(bool)
        y = np.asarray(labels, dtype=object)
        n = len(d)
        pred = y if predicted is None else np.asarray(predicted, dtype=object)
        pair = pred if counterpart is None else np.asarray(counterpart, dtype=object)
        group = np.zeros(n, dtype=object) if strata is None else np.asarray(strata, dtype=object)
        for name, values in (("labels", y), ("predicted", pred), ("counterpart", pair)):
            if len(values) != n:
                raise DataError(f"bias tally: {name} has {len(values)} rows, facet has {n}")
        if len(group) != n:
            raise DataError(f"bias tally: strata has {len(group)} rows, facet has {n}")
        known = list(classes) if classes is not None else sorted(set(y.tolist()))
        if positive not in known:
            raise DataError(
                f"bias tally: positive class {positive!r} is not among the classes "
                f"({', '.join(repr(c) for c in known)})"
            )
        index = {c: i for i, c in enumerate(known)}
        unknown = [v for v in set(y.tolist()) if v not in index]
        if unknown:
            raise DataError(
                f"bias tally: label {unknown[0]!r} is not among the classes "
                f"({', '.join(repr(c) for c in known)})"
            )
        true = np.array([index[v] for v in y.tolist()], dtype=np.intp)
        levels, stratum = np.unique(group.astype(str), return_inverse=True)
        shape = (2, len(known), 2, 2, max(len(levels), 1))
        flat = np.ravel_multi_index(
            (d.astype(np.intp), true, (pred == positive).astype(np.intp),
             (pair == positive).astype(np.intp), stratum.astype(np.intp)),
            shape,
        )  # fmt: skip
        cells = np.bincount(flat, minlength=int(np.prod(shape))).reshape(shape)
        return cls(cells.astype(np.float64), known.index(positive))

    def resample(self, draws: int, rng: np.random.Generator) -> Tally:
        """``draws`` bootstrap resamples of the rows, as a tally with a leading axis of draws.

        Drawing ``n`` rows with replacement and counting them by cell is one
        multinomial draw of ``n`` over the cells' shares.
        """
        n = round(float(self.cells.sum()))
        shares = self.cells.ravel() / max(n, 1)
        counts = rng.multinomial(n, shares, size=draws)
        return Tally(counts.reshape((draws, *self.cells.shape)).astype(np.float64), self.positive)

    # The counts the metrics are made of, each per facet: shape (..., 2), [a, d].
    def rows(self) -> Floats:
        return np.asarray(self.cells.sum(axis=(_TRUE, _PRED, _PAIR, _STRATUM)))

    def labels(self) -> Floats:
        """Rows per facet and true class, ``(..., 2, K)``."""
        return np.asarray(self.cells.sum(axis=(_PRED, _PAIR, _STRATUM)))

    def confusion(self) -> Floats:
        """One-vs-rest confusion per facet, ``(..., 2, actual, predicted)``."""
        positives = self.cells[..., self.positive, :, :, :]
        negatives = self.cells.sum(axis=_TRUE) - positives
        both = np.stack([negatives, positives], axis=-4)  # (..., 2 facet, 2 actual, 2, 2, S)
        return np.asarray(both.sum(axis=(-1, -2)))

    def by_stratum(self, predicted: bool) -> Floats:
        """Rows per facet, outcome (label or prediction) and stratum, ``(..., 2, 2, S)``."""
        if predicted:
            return np.asarray(self.cells.sum(axis=(_TRUE, _PAIR)))
        positives = self.cells[..., self.positive, :, :, :].sum(axis=(-2, -3))
        everyone = self.cells.sum(axis=(_TRUE, _PRED, _PAIR))
        return np.stack([everyone - positives, positives], axis=-2)


def _confusion(t: Tally) -> tuple[Floats, Floats, Floats, Floats]:
    """TN, FP, FN, TP per facet, each ``(..., 2)``."""
    c = t.confusion()
    return c[..., 0, 0], c[..., 0, 1], c[..., 1, 0], c[..., 1, 1]


def _gap(per_facet: Floats, first: int) -> Floats:
    """``per_facet[first] - per_facet[other]`` along the facet axis."""
    return np.asarray(per_facet[..., first] - per_facet[..., 1 - first])


# ---------------------------------------------------------------- pre-training (labels only)


def class_imbalance(t: Tally) -> Floats:
    """CI = (n_a - n_d) / (n_a + n_d)."""
    n = t.rows()
    return _div(n[..., _A] - n[..., _D], n.sum(axis=-1))


def difference_in_positive_proportions_labels(t: Tally) -> Floats:
    """DPL = q_a - q_d, q the share of positive labels in a facet."""
    q = _div(t.labels()[..., t.positive], t.rows())
    return _gap(q, _A)


def _label_distributions(t: Tally) -> tuple[Floats, Floats]:
    shares = _div(t.labels(), t.rows()[..., None])
    return shares[..., _A, :], shares[..., _D, :]


def _kl(p: Floats, q: Floats) -> Floats:
    """Σ p log(p / q) over the last axis; 0 log 0 = 0; +inf (→ NaN) where q = 0 < p."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(_div(p, q)), 0.0)
    total = np.asarray(terms.sum(axis=-1))
    return np.where(np.isfinite(total), total, np.nan)


def kl_divergence(t: Tally) -> Floats:
    """KL = Σ_y P_a(y) log(P_a(y) / P_d(y)) over the label values."""
    pa, pd = _label_distributions(t)
    return _kl(pa, pd)


def jensen_shannon(t: Tally) -> Floats:
    """JS = ½ [KL(P_a ‖ P) + KL(P_d ‖ P)], P = ½ (P_a + P_d)."""
    pa, pd = _label_distributions(t)
    mid = (pa + pd) / 2
    return np.asarray(0.5 * (_kl(pa, mid) + _kl(pd, mid)))


def lp_norm(t: Tally, p: float = 2.0) -> Floats:
    """LP = (Σ_y |P_a(y) - P_d(y)|^p)^(1/p), p = 2 (Euclidean) by default."""
    pa, pd = _label_distributions(t)
    return np.asarray((np.abs(pa - pd) ** p).sum(axis=-1) ** (1 / p))


def total_variation_distance(t: Tally) -> Floats:
    """TVD = ½ Σ_y |P_a(y) - P_d(y)|."""
    pa, pd = _label_distributions(t)
    return np.asarray(0.5 * np.abs(pa - pd).sum(axis=-1))


def kolmogorov_smirnov(t: Tally) -> Floats:
    """KS = max_y |P_a(y) - P_d(y)|."""
    pa, pd = _label_distributions(t)
    return np.asarray(np.abs(pa - pd).max(axis=-1))


def _cdd(t: Tally, predicted: bool) -> Floats:
    """(1/n) Σ_i n_i DD_i, DD_i = n_d⁽⁰⁾/n⁽⁰⁾ - n_d⁽¹⁾/n⁽¹⁾ in stratum i.

    A stratum without rejections (or acceptances) gives facet ``d`` a share of 0 of them.
    """
    counts = t.by_stratum(predicted)  # (..., 2 facet, 2 outcome, S)
    outcome = counts.sum(axis=-3)  # (..., 2 outcome, S)
    share = np.nan_to_num(_div(counts[..., _D, :, :], outcome))  # facet d's share of each outcome
    dd = share[..., 0, :] - share[..., 1, :]
    n_i = outcome.sum(axis=-2)
    return _div((n_i * dd).sum(axis=-1), n_i.sum(axis=-1))


def conditional_demographic_disparity_labels(t: Tally) -> Floats:
    """CDDL = (1/n) Σ_i n_i DD_i over strata i; DD = n_d⁽⁰⁾/n⁽⁰⁾ - n_d⁽¹⁾/n⁽¹⁾ on labels."""
    return _cdd(t, predicted=False)


# ---------------------------------------------------------------- post-training (predictions)


def difference_in_positive_proportions_predicted(t: Tally) -> Floats:
    """DPPL = q̂_a - q̂_d, q̂ the share of positive predictions in a facet."""
    _, fp, _, tp = _confusion(t)
    return _gap(_div(tp + fp, t.rows()), _A)


def disparate_impact(t: Tally) -> Floats:
    """DI = q̂_d / q̂_a."""
    _, fp, _, tp = _confusion(t)
    q = _div(tp + fp, t.rows())
    return _div(q[..., _D], q[..., _A])


def difference_in_conditional_acceptance(t: Tally) -> Floats:
    """DCAcc = c_a - c_d, c = n⁽¹⁾ / n̂⁽¹⁾ (positive labels over positive predictions)."""
    _, fp, fn, tp = _confusion(t)
    return _gap(_div(tp + fn, tp + fp), _A)


def difference_in_conditional_rejection(t: Tally) -> Floats:
    """DCR = r_d - r_a, r = n⁽⁰⁾ / n̂⁽⁰⁾ (negative labels over negative predictions)."""
    tn, fp, fn, _ = _confusion(t)
    return _gap(_div(tn + fp, tn + fn), _D)


def recall_difference(t: Tally) -> Floats:
    """RD = TPR_a - TPR_d, TPR = TP / (TP + FN)."""
    _, _, fn, tp = _confusion(t)
    return _gap(_div(tp, tp + fn), _A)


def specificity_difference(t: Tally) -> Floats:
    """SD = TNR_d - TNR_a, TNR = TN / (TN + FP)."""
    tn, fp, _, _ = _confusion(t)
    return _gap(_div(tn, tn + fp), _D)


def difference_in_acceptance_rates(t: Tally) -> Floats:
    """DAR = TP_a/(TP_a + FP_a) - TP_d/(TP_d + FP_d) (precision)."""
    _, fp, _, tp = _confusion(t)
    return _gap(_div(tp, tp + fp), _A)


def difference_in_rejection_rates(t: Tally) -> Floats:
    """DRR = TN_d/(TN_d + FN_d) - TN_a/(TN_a + FN_a) (negative predictive value)."""
    tn, _, fn, _ = _confusion(t)
    return _gap(_div(tn, tn + fn), _D)


def accuracy_difference(t: Tally) -> Floats:
    """AD = ACC_a - ACC_d, ACC = (TP + TN) / n (one-vs-rest)."""
    tn, _, _, tp = _confusion(t)
    return _gap(_div(tp + tn, t.rows()), _A)


def treatment_equality(t: Tally) -> Floats:
    """TE = FN_d/FP_d - FN_a/FP_a."""
    _, fp, fn, _ = _confusion(t)
    return _gap(_div(fn, fp), _D)


def conditional_demographic_disparity_predicted(t: Tally) -> Floats:
    """CDDPL = (1/n) Σ_i n_i DD_i over strata i, DD on predicted labels."""
    return _cdd(t, predicted=True)


def flip_test(t: Tally) -> Floats:
    """FT = (F⁺ - F⁻) / n_d over facet d's rows and their counterparts in facet a.

    F⁺: rows of ``d`` predicted negative whose counterpart is predicted positive;
    F⁻: rows of ``d`` predicted positive whose counterpart is predicted negative.
    """
    d = t.cells[..., _D, :, :, :, :].sum(axis=(-4, -1))  # (..., predicted, counterpart)
    return _div(d[..., 0, 1] - d[..., 1, 0], t.rows()[..., _D])


def generalized_entropy(t: Tally, alpha: float = 2.0) -> Floats:
    """GE(alpha) = 1/(n alpha(alpha-1)) Σ_i [(b_i/μ)^alpha - 1], b_i = ŷ_i - y_i + 1, over every row.

    Facet-blind: an index of how unequally the model's benefit falls on
    individuals. ``alpha`` = 1 is Theil's index, (1/n) Σ (b_i/μ) ln(b_i/μ).
    """
    if not alpha > 0:
        raise SpecError(f"generalized entropy: alpha {alpha} is not > 0")
    tn, fp, fn, tp = (x.sum(axis=-1) for x in _confusion(t))  # both facets
    n = tn + fp + fn + tp
    counts = np.stack([fn, tp + tn, fp], axis=-1)  # b = 0, 1, 2
    b = np.array([0.0, 1.0, 2.0])
    mu = _div((counts * b).sum(axis=-1), n)
    ratio = _div(b, mu[..., None])
    with np.errstate(divide="ignore", invalid="ignore"):
        if alpha == 1:
            terms = np.where(ratio > 0, ratio * np.log(ratio), 0.0)
            return _div((counts * terms).sum(axis=-1), n)
        terms = ratio**alpha - 1
    return _div((counts * terms).sum(axis=-1), n * alpha * (alpha - 1))


def facet_rates(t: Tally) -> dict[str, Floats]:
    """Selection rate, accuracy, TPR and FPR per facet, each ``(..., 2)`` as ``[a, d]``.

    The per-group rates of Fairlearn's ``MetricFrame`` (one-vs-rest), on the two facets.
    """
    tn, fp, fn, tp = _confusion(t)
    n = t.rows()
    return {
        "selection_rate": _div(tp + fp, n),
        "accuracy": _div(tp + tn, n),
        "tpr": _div(tp, tp + fn),
        "fpr": _div(fp, fp + tn),
    }


# ---------------------------------------------------------------- the table


Stage = Literal["pre-training", "post-training", "overall"]


@dataclass(frozen=True)
class BiasMetric:
    """One bias metric: its stable key, what it is, and how to compute it.

    Attributes:
        key: The stable name (``"DI"``) the JSON, the report and the gate use.
        name: The name in words.
        stage: ``pre-training`` (labels only), ``post-training`` (the model's
            answers) or ``overall`` (facet-blind, computed once on all rows).
        definition: A one-line formula, shown in the report.
        compute: The function of a :class:`Tally`.
        classifier_only: Needs labels and answers that are classes.
        parity: The value that means no bias (0, or 1 for DI).
    """

    key: str
    name: str
    stage: Stage
    definition: str
    compute: Callable[[Tally], Floats]
    classifier_only: bool = True
    parity: float = 0.0


_TABLE = (
    BiasMetric("CI", "class imbalance", "pre-training",
               "(n_a - n_d) / (n_a + n_d): > 0 when facet d has fewer rows than the rest",
               class_imbalance, classifier_only=False),
    BiasMetric("DPL", "difference in proportions of labels", "pre-training",
               "q_a - q_d, q = share of positive labels in the facet",
               difference_in_positive_proportions_labels),
    BiasMetric("KL", "Kullback-Leibler divergence", "pre-training",
               "Σ_y P_a(y) ln(P_a(y) / P_d(y)) over the label values", kl_divergence),
    BiasMetric("JS", "Jensen-Shannon divergence", "pre-training",
               "½ [KL(P_a‖P) + KL(P_d‖P)], P = ½ (P_a + P_d), over the label values",
               jensen_shannon),
    BiasMetric("LP", "Lp-norm (p = 2)", "pre-training",
               "√(Σ_y (P_a(y) - P_d(y))²) over the label values", lp_norm),
    BiasMetric("TVD", "total variation distance", "pre-training",
               "½ Σ_y |P_a(y) - P_d(y)| over the label values", total_variation_distance),
    BiasMetric("KS", "Kolmogorov-Smirnov", "pre-training",
               "max_y |P_a(y) - P_d(y)| over the label values", kolmogorov_smirnov),
    BiasMetric("CDDL", "conditional demographic disparity in labels", "pre-training",
               "(1/n) Σ_i n_i DD_i over strata i, DD = n_d⁽⁰⁾/n⁽⁰⁾ - n_d⁽¹⁾/n⁽¹⁾ "
               "(d's share of rejections minus its share of acceptances)",
               conditional_demographic_disparity_labels),
    BiasMetric("DPPL", "difference in positive proportions in predicted labels",
               "post-training", "q̂_a - q̂_d, q̂ = share of positive predictions in the facet",
               difference_in_positive_proportions_predicted),
    BiasMetric("DI", "disparate impact", "post-training",
               "q̂_d / q̂_a: 1 is parity, < 1 favours the rest (four-fifths rule: ≥ 0.8)",
               disparate_impact, parity=1.0),
    BiasMetric("DCAcc", "difference in conditional acceptance", "post-training",
               "c_a - c_d, c = positive labels / positive predictions in the facet",
               difference_in_conditional_acceptance),
    BiasMetric("DCR", "difference in conditional rejection", "post-training",
               "r_d - r_a, r = negative labels / negative predictions in the facet",
               difference_in_conditional_rejection),
    BiasMetric("RD", "recall difference", "post-training",
               "TPR_a - TPR_d, TPR = TP / (TP + FN)", recall_difference),
    BiasMetric("SD", "specificity difference", "post-training",
               "TNR_d - TNR_a, TNR = TN / (TN + FP)", specificity_difference),
    BiasMetric("DAR", "difference in acceptance rates", "post-training",
               "TP_a/(TP_a + FP_a) - TP_d/(TP_d + FP_d) (precision)",
               difference_in_acceptance_rates),
    BiasMetric("DRR", "difference in rejection rates", "post-training",
               "TN_d/(TN_d + FN_d) - TN_a/(TN_a + FN_a) (negative predictive value)",
               difference_in_rejection_rates),
    BiasMetric("AD", "accuracy difference", "post-training",
               "ACC_a - ACC_d, ACC = (TP + TN) / n (positive class vs the rest)",
               accuracy_difference),
    BiasMetric("TE", "treatment equality", "post-training",
               "FN_d/FP_d - FN_a/FP_a", treatment_equality),
    BiasMetric("CDDPL", "conditional demographic disparity in predicted labels",
               "post-training",
               "(1/n) Σ_i n_i DD_i over strata i, DD as in CDDL on the predicted labels",
               conditional_demographic_disparity_predicted),
    BiasMetric("FT", "counterfactual flip test", "post-training",
               "(F⁺ - F⁻) / n_d: F⁺ rows of d predicted negative whose counterpart in a "
               "(counterfactual twin or nearest neighbours) is predicted positive, F⁻ the "
               "reverse", flip_test),
    BiasMetric("GE", "generalized entropy (alpha = 2)", "overall",
               "1/(n alpha(alpha-1)) Σ_i [(b_i/μ)^alpha - 1], b_i = ŷ_i - y_i + 1, over all rows "
               "(facet-blind)", generalized_entropy),
)  # fmt: skip

BIAS_METRICS: dict[str, BiasMetric] = {m.key: m for m in _TABLE}
PRE_TRAINING: tuple[str, ...] = tuple(m.key for m in _TABLE if m.stage == "pre-training")
POST_TRAINING: tuple[str, ...] = tuple(m.key for m in _TABLE if m.stage == "post-training")
