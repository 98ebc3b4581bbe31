"""Tests on the empirical distribution functions of numeric columns: KS and Wasserstein.

Both need the same thing: for every value of the pooled sample, how many
reference and how many current values lie at or below it. We get it for many
columns at once by sorting each sample, merging the two sorted runs with a
stable sort (timsort merges two runs in linear time) and taking cumulative
counts. Columns are processed in chunks so memory stays near a few copies of
the input.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from mlcycle.monitor._base import DriftTest

__all__ = ["KSTest", "WassersteinTest"]

# ks_2samp(method="auto") is exact when both samples have at most this many values.
_KS_MAX_EXACT_N = 10_000
# Columns sorted together; bounds the temporary memory to ~_CHUNK * rows * 40 bytes.
_CHUNK = 4
# Evidently's floor on the reference standard deviation in the normalised Wasserstein distance.
_MIN_STD = 0.001

try:  # the exact small-sample distribution ks_2samp itself uses
    from scipy.stats._stats_py import _attempt_exact_2kssamp
except ImportError:  # pragma: no cover - only if scipy moves its private helper
    _attempt_exact_2kssamp = None


@dataclass(frozen=True)
class _Merged:
    """Pooled, sorted values of k columns (rows are columns) with cumulative counts."""

    values: NDArray[np.float64]  # (k, n_ref + n_cur), NaN last
    ref_cum: NDArray[np.int64]  # reference values <= values[:, i]
    cur_cum: NDArray[np.int64]
    n_ref: NDArray[np.int64]  # non-missing counts per column
    n_cur: NDArray[np.int64]


def _merge(reference: NDArray[np.float64], current: NDArray[np.float64]) -> _Merged:
    """Merges two (k, n) arrays column-sample by column-sample (rows are columns here)."""
    ref = np.sort(reference, axis=1)
    cur = np.sort(current, axis=1)
    n_ref = np.count_nonzero(~np.isnan(ref), axis=1)
    n_cur = np.count_nonzero(~np.isnan(cur), axis=1)
    both = np.concatenate([ref, cur], axis=1)
    del ref, cur
    order = np.argsort(both, axis=1, kind="stable")
    values = np.take_along_axis(both, order, axis=1)
    del both
    # NaN sort last, so before them position i holds exactly i + 1 values.
    ref_cum = np.cumsum(order < reference.shape[1], axis=1)
    del order
    cur_cum = np.arange(1, values.shape[1] + 1) - ref_cum
    return _Merged(values, ref_cum, cur_cum, n_ref, n_cur)


def _column_chunks(
    reference: NDArray[np.float64], current: NDArray[np.float64]
) -> Iterator[tuple[slice, _Merged]]:
    for start in range(0, reference.shape[1], _CHUNK):
        cols = slice(start, min(start + _CHUNK, reference.shape[1]))
        ref = np.ascontiguousarray(reference[:, cols].T, dtype=np.float64)
        cur = np.ascontiguousarray(current[:, cols].T, dtype=np.float64)
        yield cols, _merge(ref, cur)


def _check_counts(n_ref: NDArray[np.int64], n_cur: NDArray[np.int64], test: str) -> None:
    if np.any(n_ref == 0) or np.any(n_cur == 0):
        raise ValueError(f"{test}: every column needs at least one non-missing value on each side")


def _as_matrix(values: NDArray[np.generic]) -> NDArray[np.float64]:
    return np.asarray(values, dtype=np.float64).reshape(-1, 1)


class KSTest(DriftTest):
    """Two-sample Kolmogorov-Smirnov test, two-sided.

    Equal to ``scipy.stats.ks_2samp(reference, current, method="auto")``:
    the exact distribution when both samples have at most 10,000 values,
    Smirnov's asymptotic one (``scipy.stats.kstwo``) otherwise. Where scipy's
    exact computation fails numerically it falls back to the asymptotic one
    (scipy also warns; this does not).

    Example:
        >>> import numpy as np
        >>> statistic, p_value = KSTest().compute(np.arange(10.0), np.arange(10.0) + 5)
        >>> round(statistic, 2), p_value < 0.05
        (0.5, False)
    """

    name = "ks"
    kind = "p_value"
    default_threshold = 0.05

    def compute(
        self, reference: NDArray[np.generic], current: NDArray[np.generic]
    ) -> tuple[float, float | None]:
        statistics, p_values = self.compute_many(_as_matrix(reference), _as_matrix(current))
        assert p_values is not None
        return float(statistics[0]), float(p_values[0])

    def compute_many(
        self, reference: NDArray[np.float64], current: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
        k = reference.shape[1]
        statistics = np.empty(k)
        n_ref = np.empty(k, dtype=np.int64)
        n_cur = np.empty(k, dtype=np.int64)
        for cols, merged in _column_chunks(reference, current):
            _check_counts(merged.n_ref, merged.n_cur, self.name)
            values = merged.values
            # Evaluate the ECDFs only at the last of each run of tied values.
            nxt = np.concatenate([values[:, 1:], np.full((values.shape[0], 1), np.nan)], axis=1)
            end = ~np.isnan(values) & (values != nxt)
            diff = merged.ref_cum / merged.n_ref[:, None]
            diff -= merged.cur_cum / merged.n_cur[:, None]
            np.abs(diff, out=diff)
            diff[~end] = 0.0
            statistics[cols] = np.max(diff, axis=1)
            n_ref[cols] = merged.n_ref
            n_cur[cols] = merged.n_cur
        return self._p_values(statistics, n_ref, n_cur)

    @staticmethod
    def _p_values(
        statistics: NDArray[np.float64], n_ref: NDArray[np.int64], n_cur: NDArray[np.int64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        statistics = statistics.copy()
        p_values = np.full(statistics.shape, np.nan)
        exact = np.maximum(n_ref, n_cur) <= _KS_MAX_EXACT_N
        for j in np.flatnonzero(exact):
            n1, n2 = int(n_ref[j]), int(n_cur[j])
            if _attempt_exact_2kssamp is None:  # pragma: no cover
                break
            ok, d, prob = _attempt_exact_2kssamp(
                n1, n2, math.gcd(n1, n2), statistics[j], "two-sided"
            )
            if ok:
                statistics[j], p_values[j] = d, prob  # scipy reports d rounded to the lattice
        asymp = np.isnan(p_values)
        if np.any(asymp):
            m = np.maximum(n_ref[asymp], n_cur[asymp]).astype(np.float64)
            n = np.minimum(n_ref[asymp], n_cur[asymp]).astype(np.float64)
            p_values[asymp] = stats.kstwo.sf(statistics[asymp], np.round(m * n / (m + n)))
        return statistics, np.clip(p_values, 0.0, 1.0)


class WassersteinTest(DriftTest):
    """Wasserstein-1 (earth mover's) distance, by default divided by the reference std.

    The raw distance equals ``scipy.stats.wasserstein_distance(reference,
    current)``. Normalised (the default, as Evidently's ``wasserstein`` test),
    it is divided by ``max(np.std(reference), 0.001)`` (population std,
    ``ddof=0``), so the default threshold 0.1 reads "the distributions are
    a tenth of a standard deviation apart".

    Args:
        normalize: Divide by the reference standard deviation.

    Example:
        >>> import numpy as np
        >>> statistic, _ = WassersteinTest(normalize=False).compute(np.zeros(4), np.ones(4))
        >>> statistic
        1.0
    """

    name = "wasserstein"
    kind = "distance"
    default_threshold = 0.1

    def __init__(self, normalize: bool = True) -> None:
        self.normalize = normalize

    def compute(
        self, reference: NDArray[np.generic], current: NDArray[np.generic]
    ) -> tuple[float, float | None]:
        statistics, _ = self.compute_many(_as_matrix(reference), _as_matrix(current))
        return float(statistics[0]), None

    def compute_many(
        self, reference: NDArray[np.float64], current: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
        statistics = np.empty(reference.shape[1])
        for cols, merged in _column_chunks(reference, current):
            _check_counts(merged.n_ref, merged.n_cur, self.name)
            values = merged.values
            deltas = np.diff(values, axis=1)
            np.nan_to_num(deltas, copy=False, nan=0.0)
            gap = merged.ref_cum[:, :-1] / merged.n_ref[:, None]
            gap -= merged.cur_cum[:, :-1] / merged.n_cur[:, None]
            np.abs(gap, out=gap)
            gap *= deltas
            statistics[cols] = np.sum(gap, axis=1)
        if self.normalize:
            with np.errstate(all="ignore"):
                std = np.nanstd(np.asarray(reference, dtype=np.float64), axis=0)
            statistics = statistics / np.maximum(std, _MIN_STD)
        return statistics, None

    def __repr__(self) -> str:
        return f"WassersteinTest(normalize={self.normalize})"
