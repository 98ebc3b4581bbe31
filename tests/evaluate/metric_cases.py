"""Edge cases for the metric parity tests, and scikit-learn's answer on each.

The cases are predictions of small scikit-learn models on bundled data, cut
so that each edge holds: a class absent from the predictions, a predicted
class absent from the truth, classes absent from both, one class only, ties
in the scores; plus the example from the bug report. Each case checks that
its edge really holds, so a change of data or model cannot quietly turn it
into an ordinary case.

The references call scikit-learn with its defaults wherever it defines the
metric: macro averages over the labels present in the truth or the
predictions, ``zero_division=0``. Where scikit-learn has no answer we give
ours in words: ROC AUC and PR AUC are None where the class makes them
undefined (rather than scikit-learn's warning and 0), R² is None on a
constant target (rather than scikit-learn's forced 0 or 1), MAPE leaves out
rows whose target is 0 (rather than dividing by machine epsilon).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    precision_recall_fscore_support,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ClassificationCase:
    id: str
    build: Callable[[], tuple[IntArray, FloatArray]]
    # What makes the case an edge case, checked on (y, proba).
    holds: Callable[[IntArray, FloatArray], bool]

    @property
    def y(self) -> IntArray:
        return self.build()[0]

    @property
    def proba(self) -> FloatArray:
        return self.build()[1]

    @property
    def task(self) -> str:
        return "binary" if self.proba.shape[1] == 2 else "multiclass"

    @property
    def classes(self) -> list[str]:
        return [f"c{i}" for i in range(self.proba.shape[1])]


@dataclass(frozen=True)
class RegressionCase:
    id: str
    build: Callable[[], tuple[FloatArray, FloatArray]]
    holds: Callable[[FloatArray, FloatArray], bool]

    @property
    def y(self) -> FloatArray:
        return self.build()[0]

    @property
    def pred(self) -> FloatArray:
        return self.build()[1]


@cache
def _classified(name: str) -> tuple[IntArray, FloatArray]:
    loader, c = {
        "iris": (load_iris, 0.05),
        "digits": (load_digits, 0.05),
        "cancer": (load_breast_cancer, 1.0),
    }[name]
    x, y = loader(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, random_state=0, stratify=y
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
    model.fit(x_train, y_train)
    return y_test.astype(np.intp), model.predict_proba(x_test)


def _rows(name: str, keep: Callable[[IntArray, IntArray], npt.NDArray[np.bool_]]) -> Any:
    @cache
    def build() -> tuple[IntArray, FloatArray]:
        y, p = _classified(name)
        rows = keep(y, p.argmax(axis=1))
        return y[rows], p[rows]

    return build


def _rounded(name: str, decimals: int) -> Any:
    @cache
    def build() -> tuple[IntArray, FloatArray]:
        y, p = _classified(name)
        q = np.round(p, decimals)
        # Rows equal after rounding stay equal after renormalising: ties across rows.
        return y, q / q.sum(axis=1, keepdims=True)

    return build


def _reported() -> tuple[IntArray, FloatArray]:
    return np.array([0, 0, 1, 1]), np.array(
        [[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7]]
    )


def _classes(v: IntArray) -> set[int]:
    return set(np.unique(v).tolist())


def _pred(p: FloatArray) -> IntArray:
    return np.asarray(p.argmax(axis=1), dtype=np.intp)


def _tied(y: IntArray, p: FloatArray) -> bool:
    """Some score column holds the same value for rows of different classes."""
    return any(
        len(set(p[y == a, c].tolist()) & set(p[y != a, c].tolist())) > 0
        for c in range(p.shape[1])
        for a in np.unique(y).tolist()
    )


CLASSIFICATION_CASES = [
    ClassificationCase(
        "reported-example", _reported, lambda y, p: _classes(_pred(p)) - _classes(y) == {2}
    ),
    ClassificationCase(
        "iris-all-classes",
        _rows("iris", lambda y, pred: y >= 0),
        lambda y, p: _classes(y) == {0, 1, 2},
    ),
    ClassificationCase(
        "iris-predicted-class-absent-from-truth",
        _rows("iris", lambda y, pred: y != 2),
        lambda y, p: 2 in _classes(_pred(p)) and 2 not in _classes(y),
    ),
    ClassificationCase(
        "iris-class-absent-from-predictions",
        _rows("iris", lambda y, pred: pred != 2),
        lambda y, p: 2 in _classes(y) and 2 not in _classes(_pred(p)),
    ),
    ClassificationCase(
        "digits-classes-absent-from-both",
        _rows("digits", lambda y, pred: (y < 5) & (pred < 5)),
        lambda y, p: not (_classes(y) | _classes(_pred(p))) & set(range(5, 10)),
    ),
    ClassificationCase(
        "cancer-one-class-positive",
        _rows("cancer", lambda y, pred: y == 1),
        lambda y, p: _classes(y) == {1} and _classes(_pred(p)) == {0, 1},
    ),
    ClassificationCase(
        "cancer-one-class-negative",
        _rows("cancer", lambda y, pred: y == 0),
        lambda y, p: _classes(y) == {0},
    ),
    ClassificationCase(
        "iris-one-class-all-right",
        _rows("iris", lambda y, pred: (y == 0) & (pred == 0)),
        lambda y, p: _classes(y) == _classes(_pred(p)) == {0},
    ),
    ClassificationCase("cancer-tied-scores", _rounded("cancer", 1), _tied),
    ClassificationCase("digits-tied-scores", _rounded("digits", 1), _tied),
]


@cache
def _diabetes() -> tuple[FloatArray, FloatArray]:
    x, y = load_diabetes(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
    return y_test, LinearRegression().fit(x_train, y_train).predict(x_test)


def _constant() -> tuple[FloatArray, FloatArray]:
    y, pred = _diabetes()
    return np.full_like(y, np.median(y)), pred


def _zeros() -> tuple[FloatArray, FloatArray]:
    y, pred = _diabetes()
    # Centred on a value the target takes: some targets are exactly 0.
    centre = np.median(y[:21])
    return y - centre, pred - centre


REGRESSION_CASES = [
    RegressionCase("diabetes", _diabetes, lambda y, pred: True),
    RegressionCase("constant-target", _constant, lambda y, pred: bool(np.ptp(y) == 0)),
    RegressionCase("zero-targets", _zeros, lambda y, pred: bool((y == 0).any())),
    RegressionCase(
        "perfect-predictions", lambda: (_diabetes()[0], _diabetes()[0].copy()), lambda y, p: True
    ),
    RegressionCase(
        "one-row", lambda: (_diabetes()[0][:1], _diabetes()[1][:1]), lambda y, p: y.size == 1
    ),
]


def _ranking(y: IntArray, p: FloatArray) -> tuple[list[float | None], list[float | None]]:
    k = p.shape[1]
    roc: list[float | None] = []
    pr: list[float | None] = []
    for c in range(k):
        positive = y == c
        both = 0 < positive.sum() < y.size
        roc.append(float(roc_auc_score(positive, p[:, c])) if both else None)
        pr.append(float(average_precision_score(positive, p[:, c])) if positive.any() else None)
    return roc, pr


def _mean(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def sklearn_classification(
    y: IntArray, proba: FloatArray, threshold: float | None = None
) -> dict[str, Any]:
    """scikit-learn's value of every classification metric mlcycle records."""
    k = proba.shape[1]
    pred = proba.argmax(axis=1) if threshold is None else (proba[:, 1] >= threshold).astype(int)
    roc, pr = _ranking(y, proba)
    with warnings.catch_warnings():
        # scikit-learn warns about the very edges these cases are made of.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found")
        balanced = balanced_accuracy_score(y, pred)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=np.arange(k), zero_division=0
    )
    return {
        "accuracy": accuracy_score(y, pred),
        "balanced_accuracy": balanced,
        "precision_macro": precision_score(y, pred, average="macro", zero_division=0),
        "recall_macro": recall_score(y, pred, average="macro", zero_division=0),
        "f1_macro": f1_score(y, pred, average="macro", zero_division=0),
        "roc_auc": roc[1] if k == 2 else _mean(roc),
        "pr_auc": pr[1] if k == 2 else _mean(pr),
        "log_loss": log_loss(y, proba, labels=np.arange(k)),
        "ece": _ece(y, proba),
        "per_class": [
            {
                "precision": precision[c],
                "recall": recall[c],
                "f1": f1[c],
                "support": support[c],
                "roc_auc": roc[c],
                "pr_auc": pr[c],
            }
            for c in range(k)
        ],
    }


def _ece(y: IntArray, proba: FloatArray, n_bins: int = 15) -> float:
    """Guo et al. (2017), bin by bin: scikit-learn has no ECE."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    total = 0.0
    edges = np.linspace(0, 1, n_bins + 1)
    for lo, hi in itertools.pairwise(edges):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            total += inside.sum() * abs(correct[inside].mean() - confidence[inside].mean())
    return total / y.size


def sklearn_regression(y: FloatArray, pred: FloatArray) -> dict[str, float | None]:
    """scikit-learn's value of every regression metric mlcycle records."""
    nonzero = y != 0
    return {
        "mae": mean_absolute_error(y, pred),
        "rmse": root_mean_squared_error(y, pred),
        "r2": None if np.ptp(y) == 0 else r2_score(y, pred),
        "mape": (
            mean_absolute_percentage_error(y[nonzero], pred[nonzero]) if nonzero.any() else None
        ),
    }


def assert_same(got: float | None, want: float | None, name: str) -> None:
    """``got`` is scikit-learn's ``want`` to 1e-12, or both are undefined (None)."""
    if want is None:
        assert got is None, f"{name}: expected undefined (None), got {got}"
    else:
        assert got is not None, f"{name}: expected {want}, got undefined (None)"
        assert got == pytest.approx(float(want), rel=1e-12, abs=1e-12), name
