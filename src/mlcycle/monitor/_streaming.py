"""Bounded-memory summaries of a current window, fed record batch by record batch.

What streams exactly is what the frequency tests need: counts per category,
and for numeric columns counts on bins whose edges come from the reference
quantiles (fixed before the first batch). Chi-squared, Jensen-Shannon and PSI
computed from these counts equal their values on the whole window binned the
same way. KS and Wasserstein need every value, so they do not stream here: for
those, pass whole arrays to :func:`~mlcycle.monitor.drift_report`. The streamed
defaults are therefore chi-squared (reference ≤ 1,000 rows) or Jensen-Shannon
on the reference bins, for numeric and categorical columns alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlcycle.errors import DataError, SpecError
from mlcycle.monitor._counts import (
    DEFAULT_BINS,
    CountDriftTest,
    align_counts,
    bin_counts,
    reference_edges,
    value_counts,
)
from mlcycle.monitor._report import (
    ColumnType,
    DriftOptions,
    DriftReport,
    TestChoice,
    _assemble,
    _Result,
    as_columns,
    infer_type,
    missing_mask,
)

__all__ = ["StreamingSummary"]


class StreamingSummary:
    """Counts of a current window on reference bins, in memory independent of its length.

    Args:
        reference: Column name → array, or a pyarrow Table.
        column_types: As in :func:`~mlcycle.monitor.drift_report`.
        columns: Columns to follow (default: all of the reference's).
        n_bins: Reference-quantile bins for numeric columns.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> summary = StreamingSummary({"x": rng.normal(size=5000)})
        >>> for _ in range(5):
        ...     summary.update({"x": rng.normal(0.5, size=1000)})
        >>> summary.report().drifted_columns
        ['x']
    """

    def __init__(
        self,
        reference: Mapping[str, Any] | Any,
        *,
        column_types: Mapping[str, ColumnType] | None = None,
        columns: Sequence[str] | None = None,
        n_bins: int = DEFAULT_BINS,
    ) -> None:
        ref_cols, self.n_reference = as_columns(reference, "reference")
        self.n_bins = n_bins
        self.n_current = 0
        self.types: dict[str, ColumnType] = {}
        self._edges: dict[str, NDArray[np.float64]] = {}
        self._ref_counts: dict[str, Any] = {}
        self._cur_counts: dict[str, Any] = {}
        self._ref_missing: dict[str, float] = {}
        self._cur_missing: dict[str, int] = {}
        for name in columns if columns is not None else list(ref_cols):
            if name not in ref_cols:
                raise DataError(f"column {name!r} is missing from the reference data")
            values = ref_cols[name]
            missing = missing_mask(values)
            if missing.all():
                raise DataError(f"column {name!r} has no non-missing values in the reference data")
            kind = infer_type(name, values, column_types or {})
            self.types[name] = kind
            self._ref_missing[name] = float(missing.mean())
            self._cur_missing[name] = 0
            values = values[~missing]
            if kind == "numeric" and len(np.unique(values)) > n_bins:
                edges = reference_edges(values, n_bins)
                self._edges[name] = edges
                self._ref_counts[name] = bin_counts(values, edges)
                self._cur_counts[name] = np.zeros(len(edges) + 1, dtype=np.int64)
            else:
                self._ref_counts[name] = value_counts(values)
                self._cur_counts[name] = {}

    def update(self, batch: Mapping[str, Any] | Any) -> None:
        """Adds one batch (a mapping of arrays, a pyarrow Table or RecordBatch) to the window."""
        cols, n = as_columns(batch, "current batch")
        for name in self.types:
            if name not in cols:
                raise DataError(f"column {name!r} is missing from the current batch")
            values = cols[name]
            if name in self._edges:
                values = np.asarray(values, dtype=np.float64)
            missing = missing_mask(values)
            self._cur_missing[name] += int(missing.sum())
            values = values[~missing]
            if name in self._edges:
                self._cur_counts[name] += bin_counts(values, self._edges[name])
            else:
                counts = self._cur_counts[name]
                for key, count in value_counts(values).items():
                    counts[key] = counts.get(key, 0) + count
        self.n_current += n

    def counts(self, column: str) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Aligned reference and current counts of one column."""
        if column in self._edges:
            return self._ref_counts[column], self._cur_counts[column]
        _, ref, cur = align_counts(self._ref_counts[column], self._cur_counts[column])
        return ref, cur

    def report(self, options: DriftOptions | None = None) -> DriftReport:
        """Drift of the window so far; overrides must name a frequency test (chi2, z, psi…)."""
        options = options or DriftOptions()
        results = []
        for name, kind in self.types.items():
            ref, cur = self.counts(name)
            if cur.sum() == 0:
                raise DataError(f"column {name!r} has no non-missing values in the current data")
            default = "jensenshannon"
            if self.n_reference <= options.small_sample_max:
                default = "chi2"
                if options.defaults == "evidently":
                    default = "chi2_gof" if np.count_nonzero(ref + cur) > 2 else "z"
            choice = options.tests.get(name, TestChoice(default))
            test, threshold = DriftOptions(tests={name: choice}).choose(name, kind, 0, 0)
            if not isinstance(test, CountDriftTest):
                raise SpecError(
                    f"column {name!r}: test {choice.test!r} does not stream; use drift_report"
                )
            statistic, p_value = test.from_counts(ref, cur)
            missing = self._cur_missing[name]
            results.append(
                _Result(
                    name,
                    kind,
                    test,
                    threshold,
                    statistic,
                    p_value,
                    self._ref_missing[name],
                    missing / self.n_current,
                    self.n_current - missing,
                )
            )
        return _assemble(results, options, self.n_reference, self.n_current)
