"""Monitoring: is a deployed model still seeing, and doing, what it was trained for?

:func:`monitor` checks a window of the prediction log (or a file) against the
reference recorded at registration: feature, prediction and target drift
(:func:`drift_report`, vectorised, with defaults an Evidently user
recognises), realised performance once late labels arrive
(:func:`window_performance`), performance estimated without labels
(:class:`CBPE`), bias over time per sensitive column and their intersection
(:func:`fairness_report`, Fairlearn's metrics with bootstrap intervals, judged
against the reference) and out-of-distribution inputs (:class:`OODDetector`,
scored by the server that answered; :func:`fit_ood_detector` fits it at
registration),
after a check of the window's data quality (:class:`DataQuality`: absent or
empty inputs, values that are not finite numbers; never a failure of the
run). Drift and out-of-distribution checks give no verdict on too few rows
(``monitor.min_rows``). Findings are
alerts: events in the store and a webhook POST; the report is stored as JSON
and drawn as HTML by :func:`render_monitor_report`. Never imports torch.
"""

from __future__ import annotations

from mlcycle.monitor._alerts import Alert, Delivery
from mlcycle.monitor._base import DriftTest, TestKind
from mlcycle.monitor._counts import (
    ChiSquaredGoodnessOfFitTest,
    ChiSquaredTest,
    CountDriftTest,
    JensenShannonTest,
    PSITest,
    ZTest,
    binned_counts,
    reference_edges,
)
from mlcycle.monitor._fairness import (
    FairnessResult,
    FairnessWindow,
    GroupMetrics,
    fairness_report,
    fairness_timeline,
)
from mlcycle.monitor._numeric import KSTest, WassersteinTest
from mlcycle.monitor._ood import fit_ood_detector
from mlcycle.monitor._performance import (
    CBPE,
    Estimate,
    PerformanceResult,
    join_feedback,
    window_performance,
)
from mlcycle.monitor._quality import DataQuality
from mlcycle.monitor._reference import reference_answers
from mlcycle.monitor._report import (
    TESTS,
    ColumnDrift,
    ColumnType,
    DriftOptions,
    DriftReport,
    TestChoice,
    adjust_p_values,
    drift_report,
)
from mlcycle.monitor._run import MonitorResult, monitor, parse_since
from mlcycle.monitor._streaming import StreamingSummary
from mlcycle.registry import OODDetector, OODScores

__all__ = [
    "CBPE",
    "TESTS",
    "Alert",
    "ChiSquaredGoodnessOfFitTest",
    "ChiSquaredTest",
    "ColumnDrift",
    "ColumnType",
    "CountDriftTest",
    "DataQuality",
    "Delivery",
    "DriftOptions",
    "DriftReport",
    "DriftTest",
    "Estimate",
    "FairnessResult",
    "FairnessWindow",
    "GroupMetrics",
    "JensenShannonTest",
    "KSTest",
    "MonitorResult",
    "OODDetector",
    "OODScores",
    "PSITest",
    "PerformanceResult",
    "StreamingSummary",
    "TestChoice",
    "TestKind",
    "WassersteinTest",
    "ZTest",
    "adjust_p_values",
    "binned_counts",
    "drift_report",
    "fairness_report",
    "fairness_timeline",
    "fit_ood_detector",
    "join_feedback",
    "monitor",
    "parse_since",
    "reference_answers",
    "reference_edges",
    "window_performance",
]
