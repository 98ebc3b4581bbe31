"""Agrawal's stream generator: a standard concept-drift benchmark, written from the paper.

R. Agrawal, T. Imielinski, A. Swami, "Database Mining: A Performance
Perspective", IEEE TKDE 5(6), 1993: nine attributes of a loan applicant and
ten functions that label them group A (``"1"``) or B (``"0"``). A concept
change is a switch from one function to another at a known row while the
attributes keep their distribution: only the labels tell that anything
changed (the hardest case for a monitor: no input drift at all).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

__all__ = ["FEATURES", "TARGET", "agrawal", "stream"]

FEATURES = ["salary", "commission", "age", "elevel", "car", "zipcode", "hvalue", "hyears", "loan"]
TARGET = "group"
NOMINAL = ("elevel", "car", "zipcode")


def _attributes(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    salary = rng.uniform(20_000, 150_000, n)
    commission = np.where(salary >= 75_000, 0.0, rng.uniform(10_000, 75_000, n))
    zipcode = rng.integers(0, 9, n)
    return {
        "salary": salary,
        "commission": commission,
        "age": rng.integers(20, 81, n).astype(np.float64),
        "elevel": rng.integers(0, 5, n),
        "car": rng.integers(1, 21, n),
        "zipcode": zipcode,
        "hvalue": (9 - zipcode) * 100_000 * rng.uniform(0.5, 1.5, n),
        "hyears": rng.integers(1, 31, n).astype(np.float64),
        "loan": rng.uniform(0, 500_000, n),
    }


def _between(x: np.ndarray, low: float, high: float) -> np.ndarray:
    return (x >= low) & (x <= high)


def _f1(a: dict[str, np.ndarray]) -> np.ndarray:
    return (a["age"] < 40) | (a["age"] >= 60)


def _f2(a: dict[str, np.ndarray]) -> np.ndarray:
    age, salary = a["age"], a["salary"]
    return (
        ((age < 40) & _between(salary, 50_000, 100_000))
        | (_between(age, 40, 59) & _between(salary, 75_000, 125_000))
        | ((age >= 60) & _between(salary, 25_000, 75_000))
    )


def _f3(a: dict[str, np.ndarray]) -> np.ndarray:
    age, elevel = a["age"], a["elevel"]
    return (
        ((age < 40) & _between(elevel, 0, 1))
        | (_between(age, 40, 59) & _between(elevel, 1, 3))
        | ((age >= 60) & _between(elevel, 2, 4))
    )


FUNCTIONS = {1: _f1, 2: _f2, 3: _f3}


def agrawal(n: int, *, function: int, seed: int) -> pd.DataFrame:
    """``n`` applicants labelled by Agrawal's function ``function`` (1-3 here)."""
    rng = np.random.default_rng(seed)
    attributes = _attributes(n, rng)
    frame = pd.DataFrame(attributes)
    frame[TARGET] = np.where(FUNCTIONS[function](attributes), "1", "0")
    for nominal in NOMINAL:  # the paper's nominal attributes: categories, not numbers
        frame[nominal] = [f"{nominal[0]}{v}" for v in frame[nominal]]
    return frame


def stream(
    total: int, size: int, *, change_at: int | None, before: int, after: int, seed: int
) -> Iterator[tuple[int, pd.DataFrame]]:
    """``(first row number, chunk)`` for ``total`` rows; the function switches at ``change_at``."""
    for start in range(0, total, size):
        n = min(size, total - start)
        frame = agrawal(n, function=before, seed=seed + start)
        if change_at is not None and start + n > change_at:
            switched = agrawal(n, function=after, seed=seed + start)  # same attributes
            late = np.arange(start, start + n) >= change_at
            frame.loc[late, TARGET] = switched.loc[late, TARGET]
        yield start, frame
