"""Drift statistics for monitoring: pure, vectorised functions of arrays.

:func:`drift_report` compares a current window with a reference, column by
column, with defaults an Evidently user recognises; :class:`StreamingSummary`
does the frequency tests on a window streamed in batches. This package
imports numpy, scipy, pandas and pyarrow only (never torch or mlcycle.train).
"""

from __future__ import annotations

from mlcycle.monitor._base import DriftTest, TestKind
from mlcycle.monitor._counts import (
    ChiSquaredTest,
    CountDriftTest,
    JensenShannonTest,
    PSITest,
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
from mlcycle.monitor._ood import OODDetector, OODScores
from mlcycle.monitor._performance import (
    CBPE,
    Estimate,
    PerformanceResult,
    join_feedback,
    window_performance,
)
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

__all__ = [
    "CBPE",
    "TESTS",
    "ChiSquaredTest",
    "ColumnDrift",
    "ColumnType",
    "CountDriftTest",
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
    "adjust_p_values",
    "binned_counts",
    "drift_report",
    "fairness_report",
    "fairness_timeline",
    "join_feedback",
    "monitor",
    "parse_since",
    "reference_edges",
    "window_performance",
]
