"""classification_metrics and the ECE against scikit-learn and hand-computed answers."""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
    roc_auc_score,
)

from mlcycle.errors import DataError, SpecError
from mlcycle.evaluate import classification_metrics, expected_calibration_error
from tests.evaluate.conftest import Classified


def test_binary_matches_sklearn(cancer: Classified) -> None:
    y, p = cancer.y, cancer.proba
    pred = p.argmax(axis=1)
    m = classification_metrics(y, p, cancer.classes)

    assert m["n"] == y.size
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["precision_macro"] == pytest.approx(precision_score(y, pred, average="macro"))
    assert m["recall_macro"] == pytest.approx(recall_score(y, pred, average="macro"))
    assert m["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"))
    # The positive class is classes[1] ("benign"), scored by its own column.
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p[:, 1]))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p[:, 1]))
    assert m["log_loss"] == pytest.approx(log_loss(y, p))
    assert m["confusion_matrix"] == confusion_matrix(y, pred).tolist()
    assert m["threshold"] is None
    precision, recall, f1, support = precision_recall_fscore_support(y, pred)
    for i, name in enumerate(cancer.classes):
        assert m["per_class"][name]["precision"] == pytest.approx(precision[i])
        assert m["per_class"][name]["recall"] == pytest.approx(recall[i])
        assert m["per_class"][name]["f1"] == pytest.approx(f1[i])
        assert m["per_class"][name]["support"] == support[i]
    assert m["per_class"]["benign"]["roc_auc"] == pytest.approx(m["roc_auc"])
    json.dumps(m, allow_nan=False)


def test_multiclass_matches_sklearn_one_vs_rest_macro(digits: Classified) -> None:
    y, p = digits.y, digits.proba
    pred = p.argmax(axis=1)
    m = classification_metrics(y, p, digits.classes)

    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p, average="macro"))
    assert m["log_loss"] == pytest.approx(log_loss(y, p))
    assert np.array(m["confusion_matrix"]).shape == (10, 10)
    assert sum(map(sum, m["confusion_matrix"])) == y.size
    per_class_auc = roc_auc_score(y, p, multi_class="ovr", average=None)
    for i, name in enumerate(digits.classes):
        assert m["per_class"][name]["roc_auc"] == pytest.approx(per_class_auc[i])
    json.dumps(m, allow_nan=False)


def test_threshold_decides_binary_predictions(cancer: Classified) -> None:
    y, p = cancer.y, cancer.proba
    pred = (p[:, 1] >= 0.9).astype(int)
    m = classification_metrics(y, p, cancer.classes, threshold=0.9)
    assert m["threshold"] == 0.9
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["confusion_matrix"] == confusion_matrix(y, pred).tolist()
    # Probability metrics do not depend on the decision rule.
    assert m["roc_auc"] == classification_metrics(y, p, cancer.classes)["roc_auc"]


def test_a_class_absent_from_y_true_is_skipped_without_warnings(iris: Classified) -> None:
    keep = iris.y != 2
    y, p = iris.y[keep], iris.proba[keep]
    m = classification_metrics(y, p, iris.classes)
    assert m["per_class"]["virginica"]["roc_auc"] is None
    assert m["per_class"]["virginica"]["pr_auc"] is None
    assert m["per_class"]["virginica"]["support"] == 0
    expected = [roc_auc_score(y == c, p[:, c]) for c in (0, 1)]
    assert m["roc_auc"] == pytest.approx(np.mean(expected))
    assert m["balanced_accuracy"] == pytest.approx(
        np.mean([recall_score(y == c, p.argmax(axis=1) == c) for c in (0, 1)])
    )
    json.dumps(m, allow_nan=False)


def test_binary_with_one_class_has_no_auc(cancer: Classified) -> None:
    benign = cancer.y == 1
    m = classification_metrics(cancer.y[benign], cancer.proba[benign], cancer.classes)
    assert m["roc_auc"] is None
    assert m["pr_auc"] == pytest.approx(1.0)  # every row is positive: defined, and perfect
    malignant = classification_metrics(cancer.y[~benign], cancer.proba[~benign], cancer.classes)
    assert malignant["roc_auc"] is None and malignant["pr_auc"] is None


def test_float32_softmax_output_is_accepted(digits: Classified) -> None:
    p32 = digits.proba.astype(np.float32)
    m = classification_metrics(digits.y, p32, digits.classes)
    assert m["log_loss"] == pytest.approx(log_loss(digits.y, digits.proba), rel=1e-5)


@pytest.mark.parametrize(
    ("y", "proba", "classes", "error", "message"),
    [
        ([0, 1], [[0.5, 0.5]], ["a", "b"], DataError, "2 rows but proba has 1"),
        ([0, 1], [[1.0], [1.0]], ["a", "b"], DataError, "expected shape (n, 2)"),
        (
            [0, 3],
            [[0.5, 0.5], [0.5, 0.5]],
            ["a", "b"],
            DataError,
            "class indices outside 0..1 in 1 row (row 1: 3)",
        ),
        (
            [0, 1],
            [[0.5, 0.7], [0.5, 0.5]],
            ["a", "b"],
            DataError,
            "row sums other than 1 in 1 row (row 0: 1.2)",
        ),
        (
            [0, 1],
            [[1.5, -0.5], [0.5, 0.5]],
            ["a", "b"],
            DataError,
            "probabilities outside [0, 1] in 1 row (row 0: [1.5, -0.5])",
        ),
        (
            [0.5, 1],
            [[0.5, 0.5], [0.5, 0.5]],
            ["a", "b"],
            DataError,
            "not class indices in 1 row (row 0: 0.5)",
        ),
        (["a", "b"], [[0.5, 0.5], [0.5, 0.5]], ["a", "b"], DataError, "integer class indices"),
        ([], np.zeros((0, 2)), ["a", "b"], DataError, "no rows"),
        ([0, 1], [[0.5, 0.5], [0.5, 0.5]], ["a", "a"], SpecError, "distinct"),
        ([0, 0], [[1.0], [1.0]], ["a"], SpecError, "at least 2"),
    ],
)
def test_bad_inputs_say_what_is_wrong(
    y: object, proba: object, classes: list[str], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        classification_metrics(y, proba, classes)  # type: ignore[arg-type]


def test_threshold_is_binary_only_and_a_probability(iris: Classified) -> None:
    with pytest.raises(SpecError, match="only applies to binary"):
        classification_metrics(iris.y, iris.proba, iris.classes, threshold=0.5)
    with pytest.raises(SpecError, match="not in"):
        classification_metrics([0, 1], [[0.5, 0.5], [0.2, 0.8]], ["a", "b"], threshold=1.5)


def test_ece_hand_computed_example() -> None:
    # conf .95 right (bin 14), .85 wrong (bin 12), .75 right (bin 11), and in bin 13
    # (0.867, 0.933]: .90 right and .92 wrong -> accuracy .5 vs confidence .91.
    proba = [[0.95, 0.05], [0.15, 0.85], [0.25, 0.75], [0.9, 0.1], [0.92, 0.08]]
    y = [0, 0, 1, 0, 1]
    expected = (0.05 + 0.85 + 0.25 + 2 * abs(0.5 - 0.91)) / 5
    assert expected == pytest.approx(0.394)
    assert expected_calibration_error(y, proba) == pytest.approx(expected)
    assert classification_metrics(y, proba, ["a", "b"])["ece"] == pytest.approx(expected)


def test_ece_matches_a_loop_over_bins(digits: Classified) -> None:
    conf = digits.proba.max(axis=1)
    correct = digits.proba.argmax(axis=1) == digits.y
    edges = np.linspace(0, 1, 16)
    expected = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            expected += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    assert expected_calibration_error(digits.y, digits.proba) == pytest.approx(expected)


def test_ece_of_a_perfectly_calibrated_model_is_near_zero() -> None:
    rng = np.random.default_rng(0)
    q = rng.uniform(size=200_000)
    y = (rng.uniform(size=q.size) < q).astype(int)
    proba = np.column_stack([1 - q, q])
    assert expected_calibration_error(y, proba) < 0.01
    # The same labels with overconfident probabilities are clearly miscalibrated.
    sharp = np.clip((q - 0.5) * 3 + 0.5, 0, 1)
    assert expected_calibration_error(y, np.column_stack([1 - sharp, sharp])) > 0.1


def test_ece_edges_and_bad_bins() -> None:
    assert expected_calibration_error([0, 1], [[1.0, 0.0], [0.0, 1.0]]) == 0.0
    assert expected_calibration_error([1, 1], [[1.0, 0.0], [0.0, 1.0]]) == pytest.approx(0.5)
    with pytest.raises(SpecError, match="n_bins"):
        expected_calibration_error([0], [[1.0, 0.0]], n_bins=0)
