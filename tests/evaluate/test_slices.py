"""metrics_by_slice equals the metrics computed on each slice's rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlcycle.errors import DataError, SpecError
from mlcycle.evaluate import classification_metrics, metrics_by_slice, regression_metrics
from tests.evaluate.conftest import Classified, Regressed


def _same(got: object, want: object) -> bool:
    """Equal, floats to 1e-12 (a slice copied from a mask may sum in another order)."""
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(_same(got[k], want[k]) for k in want)
    if isinstance(want, list | tuple) and isinstance(got, list | tuple):
        return len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(want, float) and isinstance(got, float):
        return got == pytest.approx(want, rel=1e-12, abs=1e-15, nan_ok=True)
    return got == want


def test_regression_by_sex_matches_the_subsets(diabetes: Regressed) -> None:
    # Column 1 of the diabetes data is sex (two standardised values).
    sex = np.where(diabetes.x[:, 1] > 0, "F", "M")
    by = metrics_by_slice(diabetes.y, diabetes.pred, sex, "regression")
    assert list(by) == ["F", "M"]
    for value, metrics in by.items():
        rows = sex == value
        assert _same(metrics, regression_metrics(diabetes.y[rows], diabetes.pred[rows]))
    assert sum(m["n"] for m in by.values()) == diabetes.y.size
    json.dumps(by, allow_nan=False)


def test_classification_slices_match_the_subsets(cancer: Classified) -> None:
    radius = cancer.x[:, cancer.feature_names.index("mean radius")]
    size = np.where(radius > np.median(radius), "large", "small")
    by = metrics_by_slice(cancer.y, cancer.proba, size, "binary", cancer.classes, threshold=0.7)
    for value, metrics in by.items():
        rows = size == value
        expected = classification_metrics(
            cancer.y[rows], cancer.proba[rows], cancer.classes, threshold=0.7
        )
        assert _same(metrics, expected)
    json.dumps(by, allow_nan=False)


def test_small_and_missing_slices_are_listed_with_a_note(iris: Classified) -> None:
    group: list[str | float | None] = ["a"] * 30 + [None] * 5 + [float("nan")] * 5 + [3] * 5
    by = metrics_by_slice(iris.y, iris.proba, group, "multiclass", iris.classes, min_rows=10)
    assert list(by) == ["(missing)", "3", "a"]
    assert _same(
        by["(missing)"], classification_metrics(iris.y[30:40], iris.proba[30:40], iris.classes)
    )
    assert by["3"] == {"n": 5, "note": "fewer than 10 rows; metrics not computed"}
    assert _same(by["a"], classification_metrics(iris.y[:30], iris.proba[:30], iris.classes))


def test_bad_arguments(iris: Classified) -> None:
    with pytest.raises(DataError, match="expected 45 values like y_true"):
        metrics_by_slice(iris.y, iris.proba, ["a"] * 44, "multiclass", iris.classes)
    with pytest.raises(SpecError, match="min_rows"):
        metrics_by_slice(iris.y, iris.proba, ["a"] * 45, "multiclass", iris.classes, min_rows=0)
    with pytest.raises(SpecError, match="needs the list of class names"):
        metrics_by_slice(iris.y, iris.proba, ["a"] * 45, "multiclass")
