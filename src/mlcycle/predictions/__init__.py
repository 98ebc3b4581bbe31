"""The prediction log shared by serving and batch scoring, read by monitoring."""

from __future__ import annotations

from mlcycle.predictions._log import INPUT_PREFIX, LoggedBatch, PredictionLog
from mlcycle.predictions._traffic import RecentTraffic, VersionTraffic, recent_traffic

__all__ = [
    "INPUT_PREFIX",
    "LoggedBatch",
    "PredictionLog",
    "RecentTraffic",
    "VersionTraffic",
    "recent_traffic",
]
