"""Tests on the empirical distribution functions of numeric columns: KS and Wasserstein.

Both need the same thing: for every value of the pooled sample, how many
reference and how many current values lie at or below it. We get it column by
column: sort each sample (NaN, the missing values, sort last and are cut
off), merge the two sorted runs with a stable argsort (timsort merges two runs
in linear time) and count the reference positions cumulatively. One column at
a time keeps every temporary a few times one column's size (a 2-D pass over
blocks of columns was several times slower at a million rows: strided
copies and large fresh temporaries); columns run on one thread per core, as
numpy releases the GIL in all of these steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from mlcycle._system import cores
from mlcycle.monitor._base import DriftTest

__all__ = ["KSTest", "WassersteinTest"]

# ks_2samp(method="auto") is exact when both samples have at most this many values.
_KS_MAX_EXACT_N = 10_000
# Evidently's floor on the reference standard deviation in the normalised Wasserstein distance.
_MIN_STD = 0.001
# Below this many values per column (both sides), threads cost more than they save.
PARALLEL_MIN_VALUES = 100_000

_T = TypeVar("_T")
_R = TypeVar("_R")

try:  # the exact small-sample distribution ks_2samp itself uses
    from scipy.stats._stats_py import _attempt_exact_2kssamp
except ImportError:  # pragma: no cover - only if scipy moves its private helper
    _attempt_exact_2kssamp = None


def parallel_map(fn: Callable[[_T], _R], items: Sequence[_T], parallel: bool) -> list[_R]:
    """``[fn(x) for x in items]``, on one thread per available core when ``parallel``."""
    workers = min(len(items), cores())
    if not parallel or workers <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(workers, thread_name_prefix="mlcycle-drift") as pool:
        return list(pool.map(fn, items))


def finite_sorted(values: NDArray[Any]) -> NDArray[np.float64]:
    """The non-missing values, sorted (a view of one sorted copy: NaN sort last and are cut off)."""
    ordered = np.sort(np.asarray(values, dtype=np.float64).ravel())
    return ordered[: int(np.searchsorted(ordered, np.nan, side="left"))]


@dataclass(frozen=True)
class _Merged:
    """The pooled sample of one column, sorted, with cumulative counts per side."""

    values: NDArray[np.float64]  # n_ref + n_cur values, ascending
    ref_cum: NDArray[np.intp]  # reference values at positions <= i (ties: reference first)
    n_ref: int
    n_cur: int

    def cur_cum(self, stop: int | None = None) -> NDArray[np.float64]:
        """Current values at positions <= i, as floats, for the first ``stop`` positions."""
        k = self.values.size if stop is None else stop
        counts = np.arange(1, k + 1, dtype=np.float64)
        counts -= self.ref_cum[:k]
        return counts


def _merge(reference: NDArray[np.float64], current: NDArray[np.float64], test: str) -> _Merged:
    """Merges two sorted, NaN-free samples."""
    if reference.size == 0 or current.size == 0:
        raise ValueError(f"{test}: every column needs at least one non-missing value on each side")
    both = np.concatenate([reference, current])
    order = np.argsort(both, kind="stable")
    values = both[order]
    del both
    is_ref = order < reference.size
    del order
    return _Merged(values, np.cumsum(is_ref, dtype=np.intp), reference.size, current.size)


class _EcdfTest(DriftTest):
    """A test on the two empirical distribution functions.

    :meth:`compute` also accepts NaN (missing values) and ignores them, so
    callers need not filter a column first.
    """

    accepts_nan = True

    def compute_many(
        self, reference: NDArray[np.float64], current: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
        k = reference.shape[1]
        parallel = reference.shape[0] + current.shape[0] >= PARALLEL_MIN_VALUES
        results = parallel_map(
            lambda j: self.compute(reference[:, j], current[:, j]), range(k), parallel
        )
        statistics = np.array([s for s, _ in results], dtype=np.float64).reshape(k)
        if self.kind != "p_value":
            return statistics, None
        p_values = np.array([p for _, p in results], dtype=np.float64).reshape(k)
        return statistics, p_values


class KSTest(_EcdfTest):
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
        merged = _merge(finite_sorted(reference), finite_sorted(current), self.name)
        values = merged.values
        diff = merged.ref_cum / merged.n_ref
        diff -= merged.cur_cum() / merged.n_cur
        np.abs(diff, out=diff)
        # Evaluate the ECDFs only at the last of each run of tied values.
        diff[:-1][values[1:] == values[:-1]] = 0.0
        statistics, p_values = self._p_values(
            np.array([diff.max()]),
            np.array([merged.n_ref], dtype=np.int64),
            np.array([merged.n_cur], dtype=np.int64),
        )
        return float(statistics[0]), float(p_values[0])

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


class WassersteinTest(_EcdfTest):
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
    min_rows = 1000

    def __init__(self, normalize: bool = True) -> None:
        self.normalize = normalize

    def compute(
        self, reference: NDArray[np.generic], current: NDArray[np.generic]
    ) -> tuple[float, float | None]:
        ref = finite_sorted(reference)
        merged = _merge(ref, finite_sorted(current), self.name)
        last = merged.values.size - 1
        gap = merged.ref_cum[:last] / merged.n_ref
        cur = merged.cur_cum(last)
        cur /= merged.n_cur
        gap -= cur
        del cur
        np.abs(gap, out=gap)
        gap *= np.diff(merged.values)
        distance = float(np.sum(gap))
        if self.normalize:
            distance /= max(float(np.std(ref)), _MIN_STD)
        return distance, None

    def __repr__(self) -> str:
        return f"WassersteinTest(normalize={self.normalize})"
