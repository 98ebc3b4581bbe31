"""Tests on frequencies: chi-squared, Jensen-Shannon and PSI, and the binning they share.

Categorical columns are counted per category over the union of the categories
seen on either side (a category unseen in the reference gets a reference count
of 0). Numeric columns with more distinct reference values than ``n_bins`` are
binned on edges taken from the *reference* quantiles only, so the same edges
serve a current window streamed in batches; the outer bins are open
(``(-inf, e1)`` and ``[e_last, inf)``) so current values outside the reference
range are counted, not dropped. Numeric columns with few distinct values are
counted per value, like categories.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray
from scipy import stats
from scipy.spatial import distance

from mlcycle.monitor._base import DriftTest

__all__ = [
    "ChiSquaredGoodnessOfFitTest",
    "ChiSquaredTest",
    "CountDriftTest",
    "JensenShannonTest",
    "PSITest",
    "ZTest",
    "binned_counts",
    "reference_edges",
]

DEFAULT_BINS = 20
# Proportions of 0 are replaced by this in PSI (Evidently's value), which keeps the log finite.
PSI_EPSILON = 1e-4


def is_numeric(values: NDArray[np.generic] | pa.Array | pa.ChunkedArray) -> bool:
    """True for integer and floating arrays, numpy or Arrow (booleans count as categorical)."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return bool(pa.types.is_integer(values.type) or pa.types.is_floating(values.type))
    return values.dtype.kind in "iuf"


def reference_edges(
    reference: NDArray[np.generic], n_bins: int = DEFAULT_BINS
) -> NDArray[np.float64]:
    """Interior bin edges: the reference's ``1/n_bins … (n_bins-1)/n_bins`` quantiles, deduplicated.

    Example:
        >>> reference_edges(np.arange(101.0), n_bins=4)
        array([25., 50., 75.])
    """
    quantiles = np.quantile(np.asarray(reference, dtype=np.float64), np.linspace(0, 1, n_bins + 1))
    return np.unique(quantiles[1:-1])


def bin_counts(values: NDArray[np.generic], edges: NDArray[np.float64]) -> NDArray[np.int64]:
    """Counts of ``values`` in the ``len(edges) + 1`` bins ``[e_i, e_{i+1})`` with open outer bins."""
    index = np.searchsorted(edges, np.asarray(values, dtype=np.float64), side="right")
    return np.bincount(index, minlength=len(edges) + 1).astype(np.int64)


def value_counts(values: NDArray[np.generic] | pa.Array | pa.ChunkedArray) -> dict[object, int]:
    """Counts per distinct value, missing values excluded.

    Arrow arrays are counted by Arrow (strings stay in Arrow: no Python object per row).
    """
    if isinstance(values, pa.Array | pa.ChunkedArray):
        counted = pc.value_counts(values)
        keys: list[Any] = counted.field("values").to_pylist()
        return {
            key: int(n)
            for key, n in zip(keys, counted.field("counts").to_pylist(), strict=True)
            if key is not None
        }
    counts = pd.Series(values).value_counts(dropna=True, sort=False)
    return {key: int(n) for key, n in counts.items()}


def align_counts(
    reference: dict[object, int], current: dict[object, int]
) -> tuple[list[object], NDArray[np.int64], NDArray[np.int64]]:
    """Reference and current counts over the union of categories, reference categories first."""
    categories = list(reference) + [key for key in current if key not in reference]
    ref = np.array([reference.get(key, 0) for key in categories], dtype=np.int64)
    cur = np.array([current.get(key, 0) for key in categories], dtype=np.int64)
    return categories, ref, cur


def binned_counts(
    reference: NDArray[np.generic], current: NDArray[np.generic], n_bins: int = DEFAULT_BINS
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Reference and current frequencies on shared bins or categories (see the module docstring).

    Example:
        >>> binned_counts(np.array(["a", "b", "b"]), np.array(["b", "c"]))
        (array([1, 2, 0]), array([0, 1, 1]))
    """
    if is_numeric(reference) and is_numeric(current):
        ref_values = np.unique(reference)
        if len(ref_values) > n_bins:
            edges = reference_edges(reference, n_bins)
            return bin_counts(reference, edges), bin_counts(current, edges)
    _, ref, cur = align_counts(value_counts(reference), value_counts(current))
    return ref, cur


class CountDriftTest(DriftTest):
    """A test computed from two frequency vectors; :meth:`compute` bins raw values first.

    Args:
        n_bins: Quantile bins for numeric columns with more distinct values than this.
    """

    def __init__(self, n_bins: int = DEFAULT_BINS) -> None:
        self.n_bins = n_bins

    @abstractmethod
    def from_counts(
        self, reference: NDArray[np.int64], current: NDArray[np.int64]
    ) -> tuple[float, float | None]:
        """Returns ``(statistic, p_value)`` from aligned reference and current counts."""

    def compute(
        self, reference: NDArray[np.generic], current: NDArray[np.generic]
    ) -> tuple[float, float | None]:
        return self.from_counts(*binned_counts(reference, current, self.n_bins))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_bins={self.n_bins})"


class ChiSquaredTest(CountDriftTest):
    """Pearson's chi-squared test of homogeneity on the 2 x k table of counts.

    Equal to ``scipy.stats.chi2_contingency(table)`` with its defaults, so
    Yates' continuity correction applies only when the table has one degree
    of freedom (two categories). Categories absent on both sides are dropped;
    a single category gives statistic 0 and p-value 1. This is where our
    default departs from Evidently's: Evidently tests the current counts for
    goodness of fit to the reference proportions
    (:class:`ChiSquaredGoodnessOfFitTest`), which treats the reference
    proportions as exact, and uses a Z-test (:class:`ZTest`) for two
    categories. Homogeneity counts the reference's own sampling error, so a
    small reference does not make it alarm more often; ``monitor.defaults:
    evidently`` reproduces Evidently's choice.

    Example:
        >>> statistic, p_value = ChiSquaredTest().from_counts(np.array([50, 50]), np.array([20, 80]))
        >>> p_value < 0.05
        True
    """

    name = "chi2"
    kind = "p_value"
    default_threshold = 0.05

    def from_counts(
        self, reference: NDArray[np.int64], current: NDArray[np.int64]
    ) -> tuple[float, float | None]:
        table = np.vstack([reference, current])
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] < 2:
            return 0.0, 1.0
        result = stats.chi2_contingency(table)
        return float(result.statistic), float(result.pvalue)


class ChiSquaredGoodnessOfFitTest(CountDriftTest):
    """Pearson's goodness-of-fit test of the current counts to the reference proportions.

    Evidently's ``chisquare`` test: the expected count of each category is its
    reference count scaled to the current total, and the statistic and
    p-value are ``scipy.stats.chisquare(current, expected)`` over the union of
    the categories (``k - 1`` degrees of freedom). A current category the
    reference never saw has an expected count of 0: the statistic is infinite
    and the p-value 0, as in Evidently.

    Example:
        >>> test = ChiSquaredGoodnessOfFitTest()
        >>> statistic, p_value = test.from_counts(np.array([50, 30, 20]), np.array([40, 40, 20]))
        >>> round(statistic, 4), round(p_value, 4)
        (5.3333, 0.0695)
    """

    name = "chi2_gof"
    kind = "p_value"
    default_threshold = 0.05

    def from_counts(
        self, reference: NDArray[np.int64], current: NDArray[np.int64]
    ) -> tuple[float, float | None]:
        keep = (reference + current) > 0
        ref, cur = reference[keep], current[keep]
        if ref.size < 2:
            return 0.0, 1.0
        if np.any((ref == 0) & (cur > 0)):
            return math.inf, 0.0
        expected = ref * (cur.sum() / ref.sum())
        result = stats.chisquare(cur, expected)
        return float(result.statistic), float(result.pvalue)


class ZTest(CountDriftTest):
    """Two-proportion Z-test (pooled), two-sided: Evidently's test for two categories.

    The proportion of one category, the reference's most frequent, is
    compared between the two samples; the statistic is ``|z|`` and the
    p-value ``2 * (1 - Phi(|z|))``. With more than two categories it
    compares that category against all the others together, as Evidently
    does. When both samples hold that single category only, the p-value is 1.

    Example:
        >>> statistic, p_value = ZTest().from_counts(np.array([50, 50]), np.array([20, 80]))
        >>> round(statistic, 3), p_value < 0.05
        (4.447, True)
    """

    name = "z"
    kind = "p_value"
    default_threshold = 0.05

    def from_counts(
        self, reference: NDArray[np.int64], current: NDArray[np.int64]
    ) -> tuple[float, float | None]:
        n_ref, n_cur = int(reference.sum()), int(current.sum())
        first = int(np.argmax(reference))
        p_ref, p_cur = reference[first] / n_ref, current[first] / n_cur
        pooled = (reference[first] + current[first]) / (n_ref + n_cur)
        if pooled in (0.0, 1.0):
            return 0.0, 1.0
        z = abs(p_ref - p_cur) / math.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n_cur))
        return float(z), float(2 * stats.norm.sf(z))


class JensenShannonTest(CountDriftTest):
    """Jensen-Shannon distance between the two frequency vectors.

    Equal to ``scipy.spatial.distance.jensenshannon(reference, current,
    base)``; the natural logarithm by default (as Evidently), so the distance
    lies in ``[0, sqrt(ln 2)] ≈ [0, 0.833]``; ``base=2`` gives ``[0, 1]``.

    Example:
        >>> round(JensenShannonTest().from_counts(np.array([1, 0]), np.array([0, 1]))[0], 4)
        0.8326
    """

    name = "jensenshannon"
    kind = "distance"
    default_threshold = 0.1
    min_rows = 700

    def __init__(self, n_bins: int = DEFAULT_BINS, base: float | None = None) -> None:
        super().__init__(n_bins)
        self.base = base

    def from_counts(
        self, reference: NDArray[np.int64], current: NDArray[np.int64]
    ) -> tuple[float, float | None]:
        return float(distance.jensenshannon(reference, current, base=self.base)), None


class PSITest(CountDriftTest):
    """Population stability index: ``sum((c - r) * ln(c / r))`` over bins.

    ``r`` and ``c`` are the reference and current proportions; a proportion of
    0 is replaced by ``1e-4`` (Evidently's convention) so the index stays
    finite. Read 0.1 as "some shift" and 0.25 as "major shift".

    Example:
        >>> round(PSITest().from_counts(np.array([50, 50]), np.array([50, 50]))[0], 6)
        0.0
    """

    name = "psi"
    kind = "distance"
    default_threshold = 0.1
    min_rows = 500

    def from_counts(
        self, reference: NDArray[np.int64], current: NDArray[np.int64]
    ) -> tuple[float, float | None]:
        ref = reference / reference.sum()
        cur = current / current.sum()
        ref = np.where(ref == 0, PSI_EPSILON, ref)
        cur = np.where(cur == 0, PSI_EPSILON, cur)
        return float(np.sum((cur - ref) * np.log(cur / ref))), None
