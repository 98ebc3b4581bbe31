"""The training loop's per-epoch validation metrics are evaluation's, equal to scikit-learn's.

Early stopping and the run summary pick the best epoch by these numbers, so a
second, slightly different formula here would pick a different model than
evaluation would.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlcycle import DataError, Project, SpecError
from mlcycle.evaluate import point_metrics
from mlcycle.train import (
    Encoded,
    FeatureLayout,
    TrainData,
    encode,
    encode_target,
    load_model,
    predict,
    train,
)
from mlcycle.train._loop import _check_stopping_metric, val_metrics
from tests.evaluate import metric_cases as cases

CPU = torch.device("cpu")


def test_the_reported_example_gives_scikit_learns_macro_f1() -> None:
    y = np.array([0, 0, 1, 1])
    # Probabilities whose argmax is [0, 0, 1, 2].
    out = np.array([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7]])
    metrics = val_metrics("multiclass", y, out)
    assert metrics["f1_macro"] == pytest.approx(5 / 9)  # 0.5556, not 0.8333


@pytest.mark.parametrize("case", cases.CLASSIFICATION_CASES, ids=lambda c: c.id)
def test_classification_epoch_metrics_equal_scikit_learn(case: cases.ClassificationCase) -> None:
    expected = cases.sklearn_classification(case.y, case.proba)
    metrics = val_metrics(case.task, case.y, case.proba)
    assert metrics, "the training loop records validation metrics"
    for name, value in metrics.items():
        cases.assert_same(value, expected[name], name)


@pytest.mark.parametrize("case", cases.REGRESSION_CASES, ids=lambda c: c.id)
def test_regression_epoch_metrics_equal_scikit_learn(case: cases.RegressionCase) -> None:
    expected = cases.sklearn_regression(case.y, case.pred)
    metrics = val_metrics("regression", case.y, case.pred)
    for name, value in metrics.items():
        assert expected[name] is not None, f"{name} is undefined here but was recorded"
        cases.assert_same(value, expected[name], name)


def test_early_stopping_on_a_table_metric_follows_its_direction(project: Project) -> None:
    # Log loss is minimised: the kept epoch is the lowest, and its recorded
    # value is what evaluation computes from the kept model's predictions.
    outcome = train(
        project,
        data="sklearn:wine",
        overrides={
            "max_epochs": 12,
            "lr": 0.05,
            "early_stopping": {"metric": "log_loss", "patience": 100},
            "evaluate.bootstrap": 0,
        },
    )
    history = [p.value for p in project.runs.metrics(outcome.run_id, "val_log_loss")]
    assert len(history) == 12
    assert outcome.summary["best_value"] == pytest.approx(min(history))
    model, config = load_model(project, outcome.run_id)
    validation = project.datasets.load_split("wine@1")["validation"]
    schema = project.datasets.schema("wine@1")
    proba = predict(model, encode(validation, FeatureLayout.from_dict(config["layout"])), CPU)
    expected = point_metrics(
        "multiclass", encode_target(validation, schema), proba.numpy(), config["classes"]
    )
    for name, value in outcome.summary["val"].items():
        if name != "loss":
            assert value == pytest.approx(expected[name], rel=1e-6), name


def test_an_early_stopping_metric_undefined_on_validation_is_refused() -> None:
    # Validation rows of one class: ROC AUC cannot rank anything, every epoch.
    x = Encoded(numeric=np.zeros((6, 1), dtype=np.float32), categorical=None, image=None)
    one_class = TrainData(
        "binary", 2, x, np.array([0, 1] * 3), x, np.ones(6, dtype=np.int64), ("no", "yes")
    )
    with pytest.raises(DataError, match=r"'roc_auc' is undefined on the 6 validation rows"):
        _check_stopping_metric("roc_auc", one_class)
    assert _check_stopping_metric("log_loss", one_class) is True  # minimised
    assert _check_stopping_metric("accuracy", one_class) is False
    with pytest.raises(SpecError, match=r"'r2' is not one of loss, accuracy, .* binary task"):
        _check_stopping_metric("r2", one_class)
