"""The prediction log shared by serving and batch scoring, read by monitoring."""

from __future__ import annotations

from mlcycle.predictions._log import INPUT_PREFIX, LoggedBatch, PredictionLog
from mlcycle.predictions._refs import (
    REF_INPUT,
    REF_ROW,
    Resolved,
    csv_columns,
    csv_read_options,
    edges_sha256,
    record_input,
    resolve_references,
)
from mlcycle.predictions._traffic import RecentTraffic, VersionTraffic, recent_traffic

__all__ = [
    "INPUT_PREFIX",
    "REF_INPUT",
    "REF_ROW",
    "LoggedBatch",
    "PredictionLog",
    "RecentTraffic",
    "Resolved",
    "VersionTraffic",
    "csv_columns",
    "csv_read_options",
    "edges_sha256",
    "recent_traffic",
    "record_input",
    "resolve_references",
]
