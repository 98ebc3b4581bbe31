"""metrics_by_slice equals the metrics computed on each slice's rows."""

from __future__ import annotations

import itertools
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


def test_a_numeric_column_is_cut_into_quantile_bins(diabetes: Regressed) -> None:
    bmi = diabetes.x[:, 2]  # 133 distinct values: one slice each would say nothing
    by = metrics_by_slice(diabetes.y, diabetes.pred, bmi, "regression")
    assert len(by) == 4
    edges = np.quantile(bmi, [0, 0.25, 0.5, 0.75, 1])
    bounds = [m["bin"] for m in by.values()]
    assert bounds == [[float(a), float(b)] for a, b in itertools.pairwise(edges)]
    for i, (label, metrics) in enumerate(by.items()):
        lo, hi = metrics["bin"]
        rows = (bmi >= lo) & ((bmi < hi) if i < 3 else (bmi <= hi))
        assert label == f"[{lo:.4g}, {hi:.4g}{')' if i < 3 else ']'}"
        assert _same(
            {k: v for k, v in metrics.items() if k != "bin"},
            regression_metrics(diabetes.y[rows], diabetes.pred[rows]),
        )
        assert 30 <= metrics["n"] <= 37  # a quarter of 133, give or take ties at the edges
    assert sum(m["n"] for m in by.values()) == bmi.size
    json.dumps(by, allow_nan=False)


def test_bins_are_ordered_by_number_not_by_text(diabetes: Regressed) -> None:
    # The target (two and three digits) as a slicing column: as text "[109, ...)"
    # would sort before "[42, ...)".
    y = diabetes.y
    by = metrics_by_slice(y, diabetes.pred, y, "regression", bins=3)
    lows = [m["bin"][0] for m in by.values()]
    assert lows == sorted(lows) and len(lows) == 3
    assert next(iter(by)).startswith(f"[{y.min():.4g},") and list(by)[-1].endswith(
        f", {y.max():.4g}]"
    )
    assert sorted(by) != list(by)


def test_a_numeric_column_with_few_values_keeps_one_slice_per_value(iris: Classified) -> None:
    codes = np.where(iris.y == 0, 10, np.where(iris.y == 1, 2, 1))  # three distinct numbers
    by = metrics_by_slice(iris.y, iris.proba, codes.tolist(), "multiclass", iris.classes)
    assert list(by) == ["1", "2", "10"]  # as numbers, not as text
    assert all("bin" not in m for m in by.values())


def test_missing_numbers_and_ties_in_binned_columns(diabetes: Regressed) -> None:
    # Most rows share one value: equal quantiles collapse, and no row is lost.
    values = np.where(diabetes.y > np.median(diabetes.y), diabetes.y, 0.0)
    values[:7] = np.nan
    by = metrics_by_slice(diabetes.y, diabetes.pred, values, "regression", bins=4)
    assert next(iter(by)) == "(missing)" and by["(missing)"]["n"] == 7
    binned = [m for k, m in by.items() if k != "(missing)"]
    assert 2 <= len(binned) < 4
    assert sum(m["n"] for m in by.values()) == diabetes.y.size
    with pytest.raises(SpecError, match="bins: 1 is not >= 2"):
        metrics_by_slice(diabetes.y, diabetes.pred, values, "regression", bins=1)
