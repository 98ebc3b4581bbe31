"""Bundled demo data: a loan-application stream whose population and rules change.

Used by ``mlcycle demo`` and by the loop's tests, where the known change point
is the truth to check against; :func:`replaying` serves a model on loopback
and replays such a stream through it with the labels posted late.
"""

from __future__ import annotations

from mlcycle.demo._client import ReplayClient, replaying
from mlcycle.demo._stream import FEATURES, TARGET, chunks, loan_rows

__all__ = ["FEATURES", "TARGET", "ReplayClient", "chunks", "loan_rows", "replaying"]
