"""A table with a known truth over a number, a category and a flag (other tests use it too)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def mixed_table(n: int = 400, seed: int = 0) -> pa.Table:
    """A known truth over a number, a category and a flag, with gaps in each."""
    rng = np.random.default_rng(seed)
    income = rng.normal(50.0, 10.0, n)
    city = rng.choice(["paris", "lyon", "nice"], n).astype(object)
    member = rng.random(n) > 0.5
    score = (income - 50) / 10 + np.where(city == "paris", 1.0, -0.5) + np.where(member, 0.8, 0)
    y = np.where(score > 0.3, "yes", "no")
    income[::17] = np.nan
    city[::23] = None
    return pa.table(
        {
            "income": income,
            "city": pa.array(city.tolist(), type=pa.string()),
            "member": pa.array(member.tolist(), type=pa.bool_()),
            "y": y,
        }
    )
