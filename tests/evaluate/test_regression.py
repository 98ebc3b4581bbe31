"""regression_metrics against scikit-learn on the diabetes data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    r2_score,
)

from mlcycle.errors import DataError
from mlcycle.evaluate import regression_metrics
from tests.evaluate.conftest import Regressed


def test_matches_sklearn(diabetes: Regressed) -> None:
    y, pred = diabetes.y, diabetes.pred
    m = regression_metrics(y, pred)
    assert m["n"] == y.size
    assert m["mae"] == pytest.approx(mean_absolute_error(y, pred))
    assert m["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, pred)))
    assert m["r2"] == pytest.approx(r2_score(y, pred))
    assert m["mape"] == pytest.approx(mean_absolute_percentage_error(y, pred))
    assert m["mape_ignored"] == 0
    json.dumps(m, allow_nan=False)


def test_mape_leaves_out_zero_targets_and_counts_them(diabetes: Regressed) -> None:
    y = diabetes.y.copy()
    y[[3, 10, 40]] = 0.0
    m = regression_metrics(y, diabetes.pred)
    nonzero = y != 0
    assert m["mape_ignored"] == 3
    assert m["mape"] == pytest.approx(
        mean_absolute_percentage_error(y[nonzero], diabetes.pred[nonzero])
    )
    assert m["mae"] == pytest.approx(mean_absolute_error(y, diabetes.pred))


def test_undefined_metrics_are_none() -> None:
    m = regression_metrics([0.0, 0.0, 0.0], [0.1, -0.2, 0.0])
    assert m["r2"] is None and m["mape"] is None and m["mape_ignored"] == 3
    json.dumps(m, allow_nan=False)
    single = regression_metrics([2.0], [1.0])
    assert single["r2"] is None and single["mae"] == 1.0


def test_column_vectors_are_accepted(diabetes: Regressed) -> None:
    flat = regression_metrics(diabetes.y, diabetes.pred)
    assert regression_metrics(diabetes.y[:, None], diabetes.pred[:, None]) == flat


@pytest.mark.parametrize(
    ("y", "pred", "message"),
    [
        ([1.0, 2.0], [1.0], "2 rows but y_pred has 1"),
        ([1.0, float("nan")], [1.0, 2.0], "y_true: 1 values are NaN or infinite"),
        ([1.0, 2.0], [1.0, float("inf")], "y_pred: 1 values are NaN or infinite"),
        ([[1.0, 2.0]], [[1.0, 2.0]], "expected a 1-D array"),
        (["a"], [1.0], "expected numbers"),
        ([], [], "no rows"),
    ],
)
def test_bad_inputs(y: object, pred: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        regression_metrics(y, pred)  # type: ignore[arg-type]
