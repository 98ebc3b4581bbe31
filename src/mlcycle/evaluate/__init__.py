"""Evaluation: metrics of a model's predictions on held-out rows, and the report.

Everything here is a pure function of numpy arrays (class indices and
probabilities, or targets and predictions): no store, no torch, so the same
code scores a run after training, a challenger in the gate and a window of
labelled traffic in the monitor. Metric records are plain JSON.

Every metric is defined once, in :data:`METRICS` (name, task family,
direction, units, one formula for the point value and the bootstrap draws):
training's per-epoch metrics and early stopping (:func:`point_metrics`),
evaluation, the bootstrap (:func:`draws`, :func:`headline_with_ci`), the
champion/challenger gate and the monitor's performance window look it up by
name with :func:`metric`.

Example:
    >>> from mlcycle.evaluate import classification_metrics
    >>> m = classification_metrics([0, 1], [[0.9, 0.1], [0.2, 0.8]], ["cat", "dog"])
    >>> m["accuracy"], m["per_class"]["dog"]["recall"]
    (1.0, 1.0)
"""

from __future__ import annotations

from mlcycle.evaluate._bootstrap import bootstrap_ci, draws, headline_with_ci
from mlcycle.evaluate._classification import (
    choose_threshold,
    classification_metrics,
    expected_calibration_error,
)
from mlcycle.evaluate._metrics import (
    METRICS,
    Metric,
    count_metrics,
    default_metric,
    metric,
    metric_names,
)
from mlcycle.evaluate._point import label_metrics, point_metrics
from mlcycle.evaluate._ranking import Ranking
from mlcycle.evaluate._regression import regression_metrics
from mlcycle.evaluate._report import render_report
from mlcycle.evaluate._slices import metrics_by_slice

__all__ = [
    "METRICS",
    "Metric",
    "Ranking",
    "bootstrap_ci",
    "choose_threshold",
    "classification_metrics",
    "count_metrics",
    "default_metric",
    "draws",
    "expected_calibration_error",
    "headline_with_ci",
    "label_metrics",
    "metric",
    "metric_names",
    "metrics_by_slice",
    "point_metrics",
    "regression_metrics",
    "render_report",
]
