"""Realistic predictions for the evaluation tests: small scikit-learn models on bundled data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression, SGDClassifier
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


@dataclass(frozen=True)
class Classified:
    """Held-out rows of a fitted classifier."""

    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.intp]
    proba: npt.NDArray[np.float64]
    classes: list[str]
    feature_names: list[str]


@dataclass(frozen=True)
class Regressed:
    """Held-out rows of a fitted regressor."""

    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    pred: npt.NDArray[np.float64]


def _classify(loader: object, c: float = 1.0) -> Classified:
    bunch = loader(as_frame=False)  # type: ignore[operator]
    x_train, x_test, y_train, y_test = train_test_split(
        bunch.data, bunch.target, test_size=0.3, random_state=0, stratify=bunch.target
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
    model.fit(x_train, y_train)
    return Classified(
        x=x_test,
        y=y_test.astype(np.intp),
        proba=model.predict_proba(x_test),
        classes=[str(name) for name in bunch.target_names],
        feature_names=[str(name) for name in getattr(bunch, "feature_names", [])],
    )


@pytest.fixture(scope="session")
def cancer() -> Classified:
    """Binary: malignant (0) vs benign (1), 171 test rows."""
    return _classify(load_breast_cancer)


@pytest.fixture(scope="session")
def iris() -> Classified:
    """Three classes, 45 test rows; a weak model (C=0.05) so that errors occur."""
    return _classify(load_iris, c=0.05)


@pytest.fixture(scope="session")
def digits() -> Classified:
    """Ten classes, 540 test rows."""
    return _classify(load_digits, c=0.05)


@pytest.fixture(scope="session")
def diabetes() -> Regressed:
    """Disease progression, 133 test rows of a linear model."""
    x, y = load_diabetes(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
    model = LinearRegression().fit(x_train, y_train)
    return Regressed(x=x_test, y=y_test, pred=model.predict(x_test))


@pytest.fixture(scope="session")
def cancer_epochs() -> dict[str, list[float]]:
    """Real per-epoch learning curves: SGD logistic regression on breast cancer."""
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=1)
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    model = SGDClassifier(loss="log_loss", alpha=1e-3, random_state=0)
    curves: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_accuracy": []}
    for _ in range(12):
        model.partial_fit(x_train, y_train, classes=np.array([0, 1]))
        curves["train_loss"].append(float(log_loss(y_train, model.predict_proba(x_train))))
        curves["val_loss"].append(float(log_loss(y_val, model.predict_proba(x_val))))
        curves["val_accuracy"].append(float(accuracy_score(y_val, model.predict(x_val))))
    return curves
