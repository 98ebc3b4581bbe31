"""Percentile bootstrap intervals: correct, deterministic, fast, and robust to degenerate resamples."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression
from sklearn.metrics import accuracy_score, mean_absolute_error, roc_auc_score
from sklearn.model_selection import cross_val_predict

from mlcycle.errors import DataError, SpecError
from mlcycle.evaluate import (
    bootstrap_ci,
    classification_metrics,
    headline_with_ci,
    regression_metrics,
)
from tests.evaluate.conftest import Classified, Regressed


def _accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float(accuracy_score(y, p.argmax(axis=1)))


def test_interval_contains_the_point_estimate(cancer: Classified) -> None:
    low, high = bootstrap_ci(_accuracy, cancer.y, cancer.proba, n_boot=500)
    assert low < _accuracy(cancer.y, cancer.proba) < high
    assert 0 < high - low < 0.15


def test_deterministic_by_seed(cancer: Classified) -> None:
    first = bootstrap_ci(_accuracy, cancer.y, cancer.proba, n_boot=300, seed=7)
    assert bootstrap_ci(_accuracy, cancer.y, cancer.proba, n_boot=300, seed=7) == first
    assert bootstrap_ci(_accuracy, cancer.y, cancer.proba, n_boot=300, seed=8) != first


def test_narrows_with_more_rows() -> None:
    x, y = load_diabetes(return_X_y=True)
    pred = cross_val_predict(LinearRegression(), x, y, cv=5)
    small = bootstrap_ci(mean_absolute_error, y[:60], pred[:60], n_boot=500)
    full = bootstrap_ci(mean_absolute_error, y, pred, n_boot=500)
    assert full[1] - full[0] < 0.7 * (small[1] - small[0])


def test_level_follows_alpha(diabetes: Regressed) -> None:
    wide = bootstrap_ci(mean_absolute_error, diabetes.y, diabetes.pred, n_boot=500, alpha=0.01)
    narrow = bootstrap_ci(mean_absolute_error, diabetes.y, diabetes.pred, n_boot=500, alpha=0.5)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]


def test_resamples_where_the_metric_is_undefined_are_skipped() -> None:
    # One positive in 12 rows: about a third of the resamples lack it and ROC AUC
    # raises there; the interval comes from the rest.
    y = np.array([0] * 11 + [1])
    score = np.linspace(0, 1, 12)
    assert bootstrap_ci(roc_auc_score, y, score, n_boot=200) == (1.0, 1.0)
    nan_when_tiny = lambda v: float("nan") if v.sum() < 3 else float(v.mean())  # noqa: E731
    low, high = bootstrap_ci(nan_when_tiny, np.array([0, 0, 0, 1, 1, 1, 1]), n_boot=200)
    assert 0 < low <= high <= 1


def test_metric_undefined_everywhere_is_an_error() -> None:
    with pytest.raises(
        DataError, match="undefined on all 50 resamples; last reason: Only one class"
    ):
        bootstrap_ci(roc_auc_score, np.zeros(10), np.linspace(0, 1, 10), n_boot=50)


def test_bad_parameters() -> None:
    with pytest.raises(SpecError, match="n_boot"):
        bootstrap_ci(np.mean, np.ones(3), n_boot=0)
    with pytest.raises(SpecError, match="alpha"):
        bootstrap_ci(np.mean, np.ones(3), alpha=1.0)
    with pytest.raises(DataError, match="same number of rows"):
        bootstrap_ci(accuracy_score, np.ones(3), np.ones(4))
    with pytest.raises(DataError, match="at least one array"):
        bootstrap_ci(np.mean)


@pytest.mark.parametrize("fixture", ["cancer", "iris", "digits"])
def test_vectorised_headline_equals_the_generic_bootstrap(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    data: Classified = request.getfixturevalue(fixture)
    headline = headline_with_ci(
        "classification", data.y, data.proba, data.classes, n_boot=60, seed=3
    )
    # One generic pass computes the full sklearn-based record on every resample;
    # both paths draw the same rows for the same seed.
    records: list[dict[str, Any]] = []

    def accuracy(y: np.ndarray, p: np.ndarray) -> float:
        records.append(classification_metrics(y, p, data.classes))
        return float(records[-1]["accuracy"])

    generic = bootstrap_ci(accuracy, data.y, data.proba, n_boot=60, seed=3)
    assert (headline["accuracy"]["low"], headline["accuracy"]["high"]) == pytest.approx(generic)
    point = classification_metrics(data.y, data.proba, data.classes)
    for name, result in headline.items():
        values = [r[name] for r in records if r[name] is not None]
        low, high = np.quantile(values, [0.025, 0.975])
        assert result == pytest.approx({"value": point[name], "low": low, "high": high}), name
        assert low <= point[name] <= high, name


def test_vectorised_headline_with_threshold(cancer: Classified) -> None:
    headline = headline_with_ci(
        "binary", cancer.y, cancer.proba, cancer.classes, n_boot=80, threshold=0.8
    )
    metric = lambda y, p: classification_metrics(y, p, cancer.classes, threshold=0.8)["f1_macro"]  # noqa: E731
    assert (headline["f1_macro"]["low"], headline["f1_macro"]["high"]) == pytest.approx(
        bootstrap_ci(metric, cancer.y, cancer.proba, n_boot=80)
    )


def test_vectorised_regression_headline_equals_the_generic_bootstrap(diabetes: Regressed) -> None:
    headline = headline_with_ci("regression", diabetes.y, diabetes.pred, n_boot=200, seed=5)
    point = regression_metrics(diabetes.y, diabetes.pred)
    for name, result in headline.items():
        metric = lambda y, p, name=name: regression_metrics(y, p)[name]  # noqa: E731
        low, high = bootstrap_ci(metric, diabetes.y, diabetes.pred, n_boot=200, seed=5)
        assert result == pytest.approx({"value": point[name], "low": low, "high": high}), name


def test_undefined_headline_metric_has_no_interval(cancer: Classified) -> None:
    benign = cancer.y == 1
    headline = headline_with_ci(
        "binary", cancer.y[benign], cancer.proba[benign], cancer.classes, n_boot=50
    )
    assert headline["roc_auc"] == {"value": None, "low": None, "high": None}
    assert headline["accuracy"]["low"] is not None


def test_task_must_match_classes(cancer: Classified, iris: Classified) -> None:
    with pytest.raises(SpecError, match="task: 'ranking' is not one of"):
        headline_with_ci("ranking", cancer.y, cancer.proba, cancer.classes)
    with pytest.raises(SpecError, match="needs the list of class names"):
        headline_with_ci("multiclass", iris.y, iris.proba)
    with pytest.raises(SpecError, match="'binary' needs 2 class names"):
        headline_with_ci("binary", iris.y, iris.proba, iris.classes)


@pytest.mark.parametrize("fixture", ["cancer", "digits"])
def test_thousand_resamples_of_500_rows_are_fast(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    data: Classified = request.getfixturevalue(fixture)
    rows = np.resize(np.arange(data.y.size), 500)  # 500 rows, repeating the test set if short
    start = time.perf_counter()
    headline = headline_with_ci("classification", data.y[rows], data.proba[rows], data.classes)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"{elapsed:.2f} s"
    assert all(v["low"] is not None for v in headline.values())


def test_regression_headline_is_fast() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=500)
    start = time.perf_counter()
    headline_with_ci("regression", y, y + rng.normal(scale=0.3, size=500))
    assert time.perf_counter() - start < 2.0
