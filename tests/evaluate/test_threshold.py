"""choose_threshold against a brute-force loop over every candidate threshold."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

from mlcycle.errors import DataError, SpecError
from mlcycle.evaluate import choose_threshold
from tests.evaluate.conftest import Classified

Metric = Callable[[npt.NDArray[np.int_], npt.NDArray[np.int_]], float]


def _youden(y: npt.NDArray[np.int_], pred: npt.NDArray[np.int_]) -> float:
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return float(tp / (tp + fn) - fp / (fp + tn))


SKLEARN: dict[str, Metric] = {
    "f1": lambda y, pred: float(f1_score(y, pred, zero_division=0)),
    "balanced_accuracy": lambda y, pred: float(balanced_accuracy_score(y, pred)),
    "accuracy": lambda y, pred: float(accuracy_score(y, pred)),
    "youden": _youden,
}


def _brute_force(y: npt.NDArray[np.int_], scores: npt.NDArray[np.float64], metric: str) -> float:
    return max(SKLEARN[metric](y, (scores >= t).astype(int)) for t in np.unique(scores))


@pytest.mark.parametrize("metric", sorted(SKLEARN))
def test_matches_brute_force_on_real_probabilities(cancer: Classified, metric: str) -> None:
    y, scores = cancer.y, cancer.proba[:, 1]
    threshold, best = choose_threshold(y, scores, metric=metric)
    assert best == pytest.approx(_brute_force(y, scores, metric))
    assert SKLEARN[metric](y, (scores >= threshold).astype(int)) == pytest.approx(best)
    assert threshold in set(scores.tolist())


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 1), st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0])),
        min_size=2,
        max_size=40,
    ),
    metric=st.sampled_from(sorted(SKLEARN)),
)
def test_matches_brute_force_with_ties(data: list[tuple[int, float]], metric: str) -> None:
    y = np.array([label for label, _ in data])
    scores = np.array([score for _, score in data])
    if y.min() == y.max():
        with pytest.raises(DataError, match="both classes"):
            choose_threshold(y, scores, metric=metric)
        return
    threshold, best = choose_threshold(y, scores, metric=metric)
    assert best == pytest.approx(_brute_force(y, scores, metric))
    assert SKLEARN[metric](y, (scores >= threshold).astype(int)) == pytest.approx(best)


def test_ties_go_to_the_highest_threshold() -> None:
    # Thresholds 0.8 and 0.35 both reach accuracy 0.75.
    assert choose_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], "accuracy") == (0.8, 0.75)


def test_unknown_metric_names_the_allowed_ones() -> None:
    with pytest.raises(SpecError, match="'auc' is not one of f1, balanced_accuracy") as info:
        choose_threshold([0, 1], [0.2, 0.7], metric="auc")
    assert isinstance(info.value, ValueError)


def test_bad_inputs() -> None:
    with pytest.raises(DataError, match="expected shape"):
        choose_threshold([0, 1, 1], [0.2, 0.7], metric="f1")
    with pytest.raises(DataError, match="NaN"):
        choose_threshold([0, 1], [0.2, float("nan")], metric="f1")
