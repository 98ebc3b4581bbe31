"""The metric table: every metric against scikit-learn on edge cases, its directions, its uses.

The same cases drive tests/train/test_epoch_metrics.py, which holds the
training loop's per-epoch metrics to the same answers.
"""

from __future__ import annotations

import json
import tracemalloc
from typing import Any, get_args

import numpy as np
import pytest

from mlcycle.errors import DataError, SpecError
from mlcycle.evaluate import (
    METRICS,
    classification_metrics,
    count_metrics,
    draws,
    headline_with_ci,
    label_metrics,
    metric,
    metric_names,
    point_metrics,
    regression_metrics,
)
from mlcycle.spec import EarlyStoppingSpec, MetricName
from tests.evaluate.metric_cases import (
    CLASSIFICATION_CASES,
    REGRESSION_CASES,
    ClassificationCase,
    RegressionCase,
    assert_same,
    sklearn_classification,
    sklearn_regression,
)


def test_every_metric_of_the_table_has_a_scikit_learn_reference() -> None:
    case = CLASSIFICATION_CASES[0]
    reference = sklearn_classification(case.y, case.proba)
    assert set(metric_names("classification")) == set(reference) - {"per_class"}
    assert set(metric_names("regression")) == set(sklearn_regression(np.ones(2), np.ones(2)))
    assert set(METRICS) == {*metric_names("classification"), *metric_names("regression")}


@pytest.mark.parametrize("case", CLASSIFICATION_CASES, ids=lambda c: c.id)
def test_each_case_is_the_edge_it_names(case: ClassificationCase) -> None:
    assert case.holds(case.y, case.proba)


@pytest.mark.parametrize("case", REGRESSION_CASES, ids=lambda c: c.id)
def test_each_regression_case_is_the_edge_it_names(case: RegressionCase) -> None:
    assert case.holds(case.y, case.pred)


@pytest.mark.parametrize("case", CLASSIFICATION_CASES, ids=lambda c: c.id)
def test_classification_metrics_equal_scikit_learn(case: ClassificationCase) -> None:
    expected = sklearn_classification(case.y, case.proba)
    record = classification_metrics(case.y, case.proba, case.classes)
    by_name = point_metrics(case.task, case.y, case.proba, case.classes)
    for name in metric_names("classification"):
        assert_same(record[name], expected[name], name)
        assert_same(by_name[name], expected[name], name)
    for i, name in enumerate(case.classes):
        for key, want in expected["per_class"][i].items():
            assert_same(record["per_class"][name][key], want, f"{name}.{key}")
    json.dumps(record, allow_nan=False)


@pytest.mark.parametrize("case", CLASSIFICATION_CASES, ids=lambda c: c.id)
def test_label_metrics_from_labels_alone_equal_scikit_learn(case: ClassificationCase) -> None:
    expected = sklearn_classification(case.y, case.proba)
    names = [n for n in metric_names("classification") if not metric(n).needs_scores]
    got = label_metrics(case.y, case.proba.argmax(axis=1), case.proba.shape[1], names)
    for name in names:
        assert_same(got[name], expected[name], name)


@pytest.mark.parametrize("case", CLASSIFICATION_CASES, ids=lambda c: c.id)
def test_bootstrap_kernels_give_the_point_values(case: ClassificationCase) -> None:
    y, p = case.y, case.proba
    k = p.shape[1]
    pred = p.argmax(axis=1)
    counts = [np.bincount(v, minlength=k).astype(np.float64) for v in (y[y == pred], y, pred)]
    expected = sklearn_classification(y, p)
    for name, value in count_metrics(*counts).items():
        assert_same(float(value), expected[name], name)
    headline = headline_with_ci(case.task, y, p, case.classes, n_boot=20)
    assert tuple(headline) == metric_names("classification", headline=True)
    for name, interval in headline.items():
        assert_same(interval["value"], expected[name], name)


def test_a_binary_threshold_decides_the_label_metrics() -> None:
    case = next(c for c in CLASSIFICATION_CASES if c.id == "cancer-tied-scores")
    expected = sklearn_classification(case.y, case.proba, threshold=0.9)
    record = classification_metrics(case.y, case.proba, case.classes, threshold=0.9)
    for name in metric_names("classification"):
        assert_same(record[name], expected[name], name)


@pytest.mark.parametrize("case", REGRESSION_CASES, ids=lambda c: c.id)
def test_regression_metrics_equal_scikit_learn(case: RegressionCase) -> None:
    expected = sklearn_regression(case.y, case.pred)
    record = regression_metrics(case.y, case.pred)
    by_name = point_metrics("regression", case.y, case.pred)
    for name in metric_names("regression"):
        assert_same(record[name], expected[name], name)
        assert_same(by_name[name], expected[name], name)
    assert record["mape_ignored"] == int((case.y == 0).sum())
    headline = headline_with_ci("regression", case.y, case.pred, n_boot=20)
    for name, interval in headline.items():
        assert_same(interval["value"], expected[name], name)


@pytest.mark.parametrize("name", list(METRICS))
def test_the_direction_of_each_metric_prefers_the_better_model(name: str) -> None:
    # A perfect model against a real, imperfect one on the same rows.
    m = metric(name)
    if m.family == "classification":
        case = next(c for c in CLASSIFICATION_CASES if c.id == "iris-all-classes")
        perfect = np.eye(3)[case.y] * 0.97 + 0.01
        good = point_metrics(case.task, case.y, perfect, case.classes, names=[name])[name]
        worse = point_metrics(case.task, case.y, case.proba, case.classes, names=[name])[name]
    else:
        case_r = REGRESSION_CASES[0]
        good = point_metrics("regression", case_r.y, case_r.y + 0.01, names=[name])[name]
        worse = point_metrics("regression", case_r.y, case_r.pred, names=[name])[name]
    assert good is not None and worse is not None
    assert m.better(good, worse), (name, good, worse)


def _pair(name: str) -> tuple[str, Any, Any, Any, list[str] | None]:
    """Rows, a real model's outputs and a near-perfect model's, for one metric's family."""
    if metric(name).family == "classification":
        case = next(c for c in CLASSIFICATION_CASES if c.id == "iris-all-classes")
        return case.task, case.y, case.proba, np.eye(3)[case.y] * 0.97 + 0.01, case.classes
    r = REGRESSION_CASES[0]
    return "regression", r.y, r.pred, r.y + 0.01, None


def _by_hand(name: str, task: str, y: Any, out: Any, classes: Any, rows: Any) -> Any:
    values = [point_metrics(task, y[r], out[r], classes, names=[name])[name] for r in rows]
    return np.array([np.nan if v is None else v for v in values])


@pytest.mark.parametrize("name", list(METRICS))
@pytest.mark.parametrize("case", ["real", "binary", "edge"])
def test_draws_are_the_point_formula_on_the_same_resampled_rows(name: str, case: str) -> None:
    """Every metric's draws: its point value on each resample, on rows fixed by n and the seed.

    The rows depend on nothing else, so two models' draws are paired; the
    value on each resample is the point formula's, so the interval and the
    point value cannot disagree about what the metric is.
    """
    task, y, real, _, classes = _pair(name)
    if case != "real" and task == "regression":
        edge = next(c for c in REGRESSION_CASES if c.id == "zero-targets")
        y, real = edge.y, edge.pred
    elif case != "real":
        cid = "cancer-tied-scores" if case == "binary" else "digits-classes-absent-from-both"
        found = next(c for c in CLASSIFICATION_CASES if c.id == cid)
        task, y, real, classes = found.task, found.y, found.proba, found.classes
    got = draws(name, y, real, n_boot=30, seed=4)
    rows = np.random.default_rng(4).integers(0, y.size, size=(30, y.size))
    expected = _by_hand(name, task, y, real, classes, rows)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("name", list(METRICS))
def test_draws_centre_on_the_point_value_and_prefer_the_better_model(name: str) -> None:
    m = metric(name)
    task, y, real, better, classes = _pair(name)
    point = point_metrics(task, y, real, classes, names=[name])[name]
    assert point is not None
    values = draws(name, y, real, n_boot=400, seed=0)
    low, median, high = np.quantile(values, [0.025, 0.5, 0.975])
    assert low <= point <= high
    assert abs(median - point) <= 0.25 * (high - low) + 1e-12, (low, median, point, high)
    # Paired: on (nearly) every resample the better model is better, the way the table says.
    gain = m.improvement(values, draws(name, y, better, n_boot=400, seed=0))
    assert np.mean(gain > 0) >= 0.95, name


def test_the_spec_accepts_exactly_the_table_metrics() -> None:
    # The spec sits below every stage and cannot import the table: the test pins them.
    assert get_args(MetricName) == tuple(METRICS)
    assert get_args(EarlyStoppingSpec.model_fields["metric"].annotation) == ("loss", *METRICS)


def test_draws_name_what_is_wrong() -> None:
    with pytest.raises(SpecError, match=r"metric: 'auc' is not a metric; expected one of accuracy"):
        draws("auc", [0, 1], [[0.6, 0.4], [0.3, 0.7]])
    with pytest.raises(DataError, match=r"scores: accuracy needs probabilities of shape \(n, K\)"):
        draws("accuracy", [0, 1], [0.6, 0.3])
    with pytest.raises(SpecError, match="n_boot"):
        draws("mae", [1.0, 2.0], [1.0, 2.5], n_boot=0)


def test_unknown_metrics_name_what_exists() -> None:
    with pytest.raises(
        SpecError, match=r"metric: 'r2' is not a classification metric; expected one of accuracy, "
    ):
        point_metrics("binary", [0, 1], [[0.6, 0.4], [0.3, 0.7]], ["a", "b"], names=["r2"])
    with pytest.raises(SpecError, match="'log_loss' needs probabilities"):
        label_metrics([0, 1], [0, 1], 2, ["log_loss"])


def test_memory_does_not_grow_with_the_square_of_the_classes() -> None:
    # 4,000 classes, 800 rows: the probabilities are 25 MB, one K x K matrix
    # 128 MB, and main's bootstrap built one per resample (640 MB for 5).
    k, n = 4000, 800
    rng = np.random.default_rng(0)
    y = np.arange(n) % 400 * 10  # 400 classes present, two rows each
    proba = rng.dirichlet(np.full(k, 0.1), size=n)
    classes = [f"c{i}" for i in range(k)]
    tracemalloc.start()
    try:
        record = classification_metrics(y, proba, classes)
        headline_with_ci("multiclass", y, proba, classes, n_boot=5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert record["confusion_matrix"] is None  # above CONFUSION_MAX_CLASSES: not recorded
    assert record["per_class"]["c10"]["support"] == 2
    assert record["per_class"]["c11"]["support"] == 0
    # Bounded by a few copies of the n x K input any evaluation of it holds.
    assert peak < 4 * proba.nbytes, f"peak {peak / 2**20:.0f} MiB, input {proba.nbytes / 2**20:.0f}"
