"""The evaluate package's public surface is pinned, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping

import mlcycle.evaluate as evaluate


def test_exported_members() -> None:
    assert sorted(evaluate.__all__) == [
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
    for name in evaluate.__all__:
        member = getattr(evaluate, name)
        assert callable(member) or isinstance(member, Mapping)


def test_importing_evaluate_imports_neither_torch_nor_plotly() -> None:
    code = (
        "import sys, mlcycle.evaluate; "
        "print(sorted(m for m in ('torch', 'plotly', 'mlcycle.store') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
