"""The parity check says what its tolerance is relative to, in the error and in every summary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sklearn.datasets import load_diabetes

from mlcycle.errors import ParityError
from mlcycle.registry import describe_parity
from mlcycle.train import check_parity


@dataclass
class _Values:
    values: np.ndarray[Any, Any]


@dataclass
class _Regressor:
    """A predictor whose outputs are given: what ONNX Runtime answered."""

    answers: np.ndarray[Any, Any]
    task: str = "regression"
    input_names: tuple[str, ...] = ("x",)

    def predict(self, table: pa.Table) -> _Values:
        return _Values(self.answers)


def test_a_regression_passes_within_a_relative_tolerance_and_says_so() -> None:
    # Diabetes targets are 25 to 346: a float32 graph differs by ~1e-3 absolute.
    y = load_diabetes().target.astype(np.float64)
    onnx = y * (1 + 3e-6)
    table = pa.table({"x": np.zeros(y.size)})
    parity = check_parity(y, _Regressor(onnx), table)  # type: ignore[arg-type]
    assert parity["max_abs_diff"] > 1e-4  # absolute: above the tolerance's number
    assert parity["max_rel_diff"] == pytest.approx(3e-6, rel=1e-3)
    assert parity["tolerance"] == 1e-4
    text = describe_parity(parity)
    assert "values within 3e-06 of max(1, |value|) (tolerance 0.0001, relative)" in text
    assert f"largest absolute difference {parity['max_abs_diff']:.2g}" in text

    with pytest.raises(ParityError, match=r"relative to max\(1, \|value\|\) .* > tolerance 0.0001"):
        check_parity(y, _Regressor(y * (1 + 1e-3)), table)  # type: ignore[arg-type]


def test_older_regression_records_still_read_right() -> None:
    old = {"rows": 133, "max_abs_diff": 0.00098, "labels_identical": None}
    assert describe_parity(old) == (
        "ONNX Runtime matches PyTorch on 133 test rows: largest absolute difference 0.00098 "
        "(the tolerance, 0.0001, is relative to max(1, |value|))"
    )


def test_classification_is_within_an_absolute_tolerance_on_probabilities() -> None:
    text = describe_parity(
        {"rows": 45, "max_abs_diff": 2.5e-7, "labels_identical": True, "tolerance": 1e-4}
    )
    assert text.endswith("probabilities within 2.5e-07 (tolerance 0.0001), labels identical")
