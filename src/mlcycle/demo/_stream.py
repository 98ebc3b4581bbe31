"""The demo's stream: loan applications whose population and rules change at a known point.

Eight standardised application features; a loan is ``approved`` when a
weighted sum of them plus noise is positive. After the change the population
moves (five features shift by 0.8 standard deviations) and the rules turn
(three weights change sign), so the model trained before the change is wrong
on a large share of the new applications and only new labels can fix it. The
truth is known exactly, which is what a test of the loop needs.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

__all__ = ["FEATURES", "TARGET", "chunks", "loan_rows"]

FEATURES = [
    "income",
    "debt_ratio",
    "credit_years",
    "open_accounts",
    "late_payments",
    "age",
    "loan_amount",
    "employment_years",
]
TARGET = "approved"
_W_BEFORE = np.array([1.5, -1.0, 0.8, 0.6, -0.5, 0.4, 0.3, -0.2])
_W_AFTER = _W_BEFORE * np.array([-1, 1, -1, 1, -1, 1, 1, 1])
_SHIFT = np.array([0.8, 0.8, 0.8, 0.8, 0.8, 0.0, 0.0, 0.0])


def loan_rows(n: int, *, changed: bool, seed: int) -> pd.DataFrame:
    """``n`` labelled applications from before (``changed=False``) or after the change.

    Example:
        >>> frame = loan_rows(4, changed=False, seed=0)
        >>> list(frame.columns)[-1], len(frame)
        ('approved', 4)
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES))) + (_SHIFT if changed else 0.0)
    w = _W_AFTER if changed else _W_BEFORE
    score = x @ w - (_SHIFT @ w if changed else 0.0) + 0.25 * rng.normal(size=n)
    frame = pd.DataFrame(x, columns=FEATURES)
    frame[TARGET] = np.where(score > 0, "yes", "no")
    return frame


def chunks(total: int, size: int, *, changed: bool, seed: int) -> Iterator[pd.DataFrame]:
    """``total`` rows in chunks of ``size``, each chunk with its own seed."""
    for start in range(0, total, size):
        yield loan_rows(min(size, total - start), changed=changed, seed=seed + start)
