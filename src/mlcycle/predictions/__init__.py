"""The prediction log shared by serving and batch scoring, read by monitoring."""

from __future__ import annotations

from mlcycle.predictions._log import INPUT_PREFIX, LoggedBatch, PredictionLog

__all__ = ["INPUT_PREFIX", "LoggedBatch", "PredictionLog"]
