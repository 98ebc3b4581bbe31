"""Evaluation: metrics of a model's predictions on held-out rows, and the report.

Everything here is a pure function of numpy arrays (class indices and
probabilities, or targets and predictions): no store, no torch, so the same
code scores a run after training, a challenger in the gate and a window of
labelled traffic in the monitor. Metric records are plain JSON.

Example:
    >>> from mlcycle.evaluate import classification_metrics
    >>> m = classification_metrics([0, 1], [[0.9, 0.1], [0.2, 0.8]], ["cat", "dog"])
    >>> m["accuracy"], m["per_class"]["dog"]["recall"]
    (1.0, 1.0)
"""

from __future__ import annotations

from mlcycle.evaluate._bootstrap import bootstrap_ci, headline_with_ci
from mlcycle.evaluate._classification import (
    choose_threshold,
    classification_metrics,
    expected_calibration_error,
)
from mlcycle.evaluate._regression import regression_metrics
from mlcycle.evaluate._report import render_report
from mlcycle.evaluate._slices import metrics_by_slice

__all__ = [
    "bootstrap_ci",
    "choose_threshold",
    "classification_metrics",
    "expected_calibration_error",
    "headline_with_ci",
    "metrics_by_slice",
    "regression_metrics",
    "render_report",
]
