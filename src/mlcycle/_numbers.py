"""Finite numbers: what JSON, the event log and the reports can hold.

Example:
    >>> finite("2.5"), finite(float("nan")), finite(True), finite("abc")
    (2.5, None, None, None)
    >>> finite_json({"auc": float("nan"), "rows": [1.0, float("inf")]})
    {'auc': None, 'rows': [1.0, None]}
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["finite", "finite_json"]


def finite(value: Any) -> float | None:
    """``value`` as a finite float (numbers, numpy's too, and numeric text), else None; never a bool."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real | str):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):  # text that is no number; an int past float's range
        return None
    return number if math.isfinite(number) else None


def finite_json(value: Any) -> Any:
    """``value`` with every NaN or infinite float, however deep in dicts and lists, as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value
