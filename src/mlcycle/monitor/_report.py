"""Per-column drift of a current sample against a reference, and the dataset verdict.

Defaults follow Evidently's ``_get_default_stattest`` so its users recognise
them: with a reference of at most 1,000 rows, numeric columns with more than 5
distinct values use KS (p ≤ 0.05) and all others chi-squared (p ≤ 0.05); with
a larger reference, numeric columns use the normalised Wasserstein distance
(≥ 0.1) and the others Jensen-Shannon (≥ 0.1). Large-sample defaults are
distances on purpose: at 100k rows a p-value flags shifts too small to matter.

Where the defaults differ from Evidently's (``DriftOptions.defaults``, the
spec's ``monitor.defaults``):

- ``"mlcycle"`` (the default) tests categories with chi-squared
  *homogeneity* on the 2 x k table (``scipy.stats.chi2_contingency``), which
  counts the reference's own sampling error, for two categories as well.
  Evidently tests the current counts for *goodness of fit* to the reference
  proportions (``scipy.stats.chisquare``), taken as exact, and uses a
  two-proportion Z-test for two categories.
- ``"mlcycle"`` counts a numeric column's distinct values (more than 5: KS or
  Wasserstein) on the reference alone, so the test of a column does not
  change with the window; Evidently counts them on reference and current
  together.
- ``"evidently"`` makes both of Evidently's choices (``chi2_gof`` and ``z``).

P-values are corrected for multiple testing across the p-value columns,
Benjamini-Hochberg by default (Evidently applies no correction: pass
``multiple_testing="none"`` to reproduce it). The dataset drifts when the share
of drifted columns is at least ``drift_share`` (0.5).

A column gives no verdict (``drift`` is None) on fewer current values than
its test's ``min_rows``, or ``DriftOptions.min_rows`` when set, and the
dataset none unless every column has one. The tests' own minimums are the
window sizes at which a column that did not move is flagged in at most about
5 % of windows, measured on 1,000 simulated windows per size (normal,
log-normal, uniform, bimodal and Poisson columns, 4 and 20 categories, with
references of 1,001 and 5,000 rows, where the test is the default): the
normalised Wasserstein distance at 0.1 flags 15 % of such windows at 500
rows and 5 % at 1,000 (``min_rows`` 1,000); Jensen-Shannon at 0.1, 14 % at
500 and 3 % at 700 (700); PSI at 0.1, 12 % at 400 and 3 % at 500 (500). The
p-value tests hold their level at any size, but chi-squared on sparse
categories flags 14-17 % of windows of 1 or 2 rows and about 5 % from 30 on,
so they, and out-of-distribution shares, need 30 rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from mlcycle.errors import DataError, SpecError
from mlcycle.monitor._base import DriftTest
from mlcycle.monitor._counts import DEFAULT_BINS, CountDriftTest, is_numeric
from mlcycle.monitor._numeric import PARALLEL_MIN_VALUES, parallel_map
from mlcycle.plugins import DRIFT_TESTS

__all__ = [
    "TESTS",
    "ColumnDrift",
    "ColumnType",
    "DriftOptions",
    "DriftReport",
    "TestChoice",
    "adjust_p_values",
    "drift_report",
]

ColumnType = Literal["numeric", "categorical"]
Correction = Literal["none", "bonferroni", "benjamini-hochberg"]
Defaults = Literal["mlcycle", "evidently"]
Columns = Mapping[str, Any]

#: The drift tests by name: :data:`mlcycle.plugins.DRIFT_TESTS`, where a new one registers.
TESTS = DRIFT_TESTS


@dataclass(frozen=True)
class TestChoice:
    """A per-column override: a test name from :data:`TESTS` and its threshold (None: the test's default)."""

    __test__ = False  # not a pytest class, whatever its name

    test: str
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.test not in TESTS:
            raise SpecError(TESTS.unknown(self.test))


@dataclass(frozen=True)
class DriftOptions:
    """How :func:`drift_report` chooses tests and decides.

    Attributes:
        tests: Per-column overrides of the default test.
        multiple_testing: Correction over the p-value columns.
        drift_share: Share of drifted columns at or above which the dataset drifts.
        small_sample_max: Largest reference size that still gets the p-value defaults.
        n_bins: Reference-quantile bins for Jensen-Shannon, PSI and chi-squared on numeric columns.
        defaults: ``"mlcycle"`` or ``"evidently"``: how the default tests are
            chosen (see the module docstring).
        min_rows: Fewest current values a column needs for a verdict; None:
            each test's own ``min_rows``.
    """

    tests: Mapping[str, TestChoice] = field(default_factory=dict)
    multiple_testing: Correction = "benjamini-hochberg"
    drift_share: float = 0.5
    small_sample_max: int = 1000
    n_bins: int = DEFAULT_BINS
    defaults: Defaults = "mlcycle"
    min_rows: int | None = None

    def __post_init__(self) -> None:
        if self.multiple_testing not in ("none", "bonferroni", "benjamini-hochberg"):
            raise SpecError(
                f"multiple_testing: {self.multiple_testing!r} is not one of "
                "'none', 'bonferroni', 'benjamini-hochberg'"
            )
        if not 0 < self.drift_share <= 1:
            raise SpecError(f"drift_share: {self.drift_share} is not in (0, 1]")
        if self.defaults not in ("mlcycle", "evidently"):
            raise SpecError(f"defaults: {self.defaults!r} is not one of 'mlcycle', 'evidently'")
        if self.min_rows is not None and self.min_rows < 1:
            raise SpecError(f"min_rows: {self.min_rows} is not a positive number of rows")

    def choose(
        self, column: str, column_type: ColumnType, n_reference: int, n_unique: int
    ) -> tuple[DriftTest, float]:
        """The test and threshold for one column (override, else the default).

        ``n_unique`` is the number of distinct values: of the reference for
        ``defaults="mlcycle"`` (only numeric columns need it), of reference
        and current together for ``"evidently"`` (every column).
        """
        choice = self.tests.get(column)
        if choice is None:
            numeric = column_type == "numeric" and n_unique > 5
            if n_reference > self.small_sample_max:
                choice = TestChoice("wasserstein" if numeric else "jensenshannon")
            elif numeric:
                choice = TestChoice("ks")
            elif self.defaults == "evidently":
                choice = TestChoice("chi2_gof" if n_unique > 2 else "z")
            else:
                choice = TestChoice("chi2")
        test = TESTS[choice.test]()
        if isinstance(test, CountDriftTest):
            test.n_bins = self.n_bins
        threshold = test.default_threshold if choice.threshold is None else choice.threshold
        return test, threshold


@dataclass(frozen=True)
class ColumnDrift:
    """The drift verdict of one column. Missing shares are of all rows on that side.

    ``drift`` is None (no verdict) when the column has fewer than ``min_rows``
    non-missing current values (``rows``).
    """

    column: str
    type: ColumnType
    test: str
    statistic: float
    p_value: float | None
    adjusted_p_value: float | None
    threshold: float
    drift: bool | None
    missing_reference: float
    missing_current: float
    rows: int = 0
    min_rows: int = 0


@dataclass(frozen=True)
class DriftReport:
    """Per-column drift and the dataset-level verdict; :meth:`to_dict` is JSON-able.

    ``drift`` is None (no verdict) unless every column has a verdict.
    """

    columns: tuple[ColumnDrift, ...]
    share_drifted: float
    drift: bool | None
    n_reference: int
    n_current: int
    drift_share: float
    multiple_testing: Correction

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the columns that drifted, in report order."""
        return [c.column for c in self.columns if c.drift]

    @property
    def undecided_columns(self) -> list[str]:
        """Names of the columns with too few current values for a verdict."""
        return [c.column for c in self.columns if c.drift is None]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data: ``{"columns": [...], "dataset": {...}}``."""
        return {
            "columns": [asdict(c) for c in self.columns],
            "dataset": {
                "share_drifted": self.share_drifted,
                "drift": self.drift,
                "drift_share": self.drift_share,
                "n_reference": self.n_reference,
                "n_current": self.n_current,
                "multiple_testing": self.multiple_testing,
                "undecided": self.undecided_columns,
            },
        }


def adjust_p_values(p_values: NDArray[np.float64], method: Correction) -> NDArray[np.float64]:
    """Bonferroni or Benjamini-Hochberg (step-up) adjusted p-values, capped at 1.

    Example:
        >>> adjust_p_values(np.array([0.01, 0.04, 0.03]), "benjamini-hochberg")
        array([0.03, 0.04, 0.04])
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if method == "none" or m == 0:
        return p.copy()
    if method == "bonferroni":
        return np.minimum(p * m, 1.0)
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


@dataclass(frozen=True)
class _Result:
    column: str
    type: ColumnType
    test: DriftTest
    threshold: float
    statistic: float
    p_value: float | None
    missing_reference: float
    missing_current: float
    n_values: int  # non-missing current values


def _assemble(
    results: Sequence[_Result], options: DriftOptions, n_reference: int, n_current: int
) -> DriftReport:
    """Applies the multiple-testing correction and the thresholds (shared with streaming)."""
    tested = [i for i, r in enumerate(results) if r.p_value is not None]
    raw = np.array([results[i].p_value for i in tested], dtype=np.float64)
    adjusted = dict(
        zip(tested, adjust_p_values(raw, options.multiple_testing).tolist(), strict=True)
    )
    columns = []
    for i, r in enumerate(results):
        adj = adjusted.get(i)
        need = r.test.min_rows if options.min_rows is None else options.min_rows
        drift: bool | None = None
        if r.n_values >= need:
            drift = bool(adj <= r.threshold if adj is not None else r.statistic >= r.threshold)
        columns.append(
            ColumnDrift(
                column=r.column,
                type=r.type,
                test=r.test.name,
                statistic=float(r.statistic),
                p_value=r.p_value,
                adjusted_p_value=adj,
                threshold=r.threshold,
                drift=drift,
                missing_reference=r.missing_reference,
                missing_current=r.missing_current,
                rows=r.n_values,
                min_rows=need,
            )
        )
    share = sum(bool(c.drift) for c in columns) / len(columns) if columns else 0.0
    decided = bool(columns) and all(c.drift is not None for c in columns)
    return DriftReport(
        tuple(columns),
        share,
        share >= options.drift_share if decided else None,
        n_reference,
        n_current,
        options.drift_share,
        options.multiple_testing,
    )


def as_columns(data: Columns | Any, side: str) -> tuple[dict[str, NDArray[Any]], int]:
    """Column arrays of a mapping or a pyarrow Table/RecordBatch, and the common row count."""
    if hasattr(data, "column_names") and hasattr(data, "column"):
        columns = {
            name: np.asarray(data.column(name).to_numpy(zero_copy_only=False))
            for name in data.column_names
        }
    else:
        columns = {str(name): np.asarray(values) for name, values in dict(data).items()}
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        detail = ", ".join(f"{k!r}: {len(v)}" for k, v in columns.items())
        raise DataError(f"{side} data: columns differ in length ({detail})")
    return columns, lengths.pop() if lengths else 0


def missing_mask(values: NDArray[Any]) -> NDArray[np.bool_]:
    """True where a value is missing (NaN, None, pandas NA)."""
    if values.dtype.kind == "f":
        return np.asarray(np.isnan(values), dtype=bool)
    if values.dtype.kind in "iub":
        return np.zeros(values.shape, dtype=bool)
    return np.asarray(pd.isna(values), dtype=bool)


def infer_type(name: str, values: NDArray[Any], declared: Mapping[str, ColumnType]) -> ColumnType:
    """The declared type of a column, else numeric for int/float arrays and categorical otherwise."""
    kind = declared.get(name)
    if kind is None:
        return "numeric" if is_numeric(values) else "categorical"
    if kind not in ("numeric", "categorical"):
        raise SpecError(f"column {name!r}: type {kind!r} is not 'numeric' or 'categorical'")
    return kind


def _numeric(name: str, values: NDArray[Any], side: str) -> NDArray[np.float64]:
    try:
        return (
            np.asarray(values, dtype=np.float64)
            if values.dtype.kind != "O"
            else (
                pd.to_numeric(pd.Series(values), errors="raise").to_numpy(
                    dtype=np.float64, na_value=np.nan
                )
            )
        )
    except (TypeError, ValueError) as exc:
        raise DataError(f"column {name!r} in the {side} data: expected numbers ({exc})") from None


def _is_arrow(values: Any) -> bool:
    return isinstance(values, pa.Array | pa.ChunkedArray)


def _is_arrow_string(values: Any) -> bool:
    return _is_arrow(values) and (
        pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
    )


def _to_numpy(values: Any) -> NDArray[Any]:
    return np.asarray(values.to_numpy(zero_copy_only=False)) if _is_arrow(values) else values


def _float64(values: Any) -> NDArray[np.float64]:
    """A numeric column as float64, missing values as NaN (Arrow nulls included)."""
    return np.asarray(_to_numpy(values), dtype=np.float64)


def _raw_columns(data: Columns | Any, side: str) -> tuple[dict[str, Any], int]:
    """Like :func:`as_columns`, but Arrow columns stay Arrow until a test needs them.

    Converting every column up front cost a Python object per string and a
    float64 copy of every numeric column at once; this way numeric columns
    are converted one at a time and strings are counted by Arrow.
    """
    if hasattr(data, "column_names") and hasattr(data, "column"):
        columns = {name: data.column(name) for name in data.column_names}
    else:
        columns = {str(name): np.asarray(values) for name, values in dict(data).items()}
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        detail = ", ".join(f"{k!r}: {len(v)}" for k, v in columns.items())
        raise DataError(f"{side} data: columns differ in length ({detail})")
    return columns, lengths.pop() if lengths else 0


def _prepare(name: str, kind: ColumnType, values: Any, side: str) -> tuple[Any, int]:
    """The column ready for its test (Arrow numbers and strings kept lazily) and its missing count."""
    if kind == "numeric" and _is_arrow(values) and is_numeric(values):
        missing = values.null_count
        if pa.types.is_floating(values.type):
            missing += pc.sum(pc.is_nan(values)).as_py() or 0
    elif kind == "categorical" and _is_arrow_string(values):
        missing = values.null_count
    else:
        values = _to_numpy(values)
        if kind == "numeric":
            values = _numeric(name, values, side)
        missing = int(missing_mask(values).sum())
    if len(values) == 0 or missing == len(values):
        raise DataError(f"column {name!r} has no non-missing values in the {side} data")
    return values, int(missing)


def _n_unique_above(values: Any, limit: int) -> int:
    """Distinct non-missing values of a numeric column, exact up to ``limit + 1`` (cheap on large columns)."""
    head = _float64(values[: 100 * (limit + 1)])
    n = len(pd.unique(head[~np.isnan(head)]))
    if n > limit:
        return n
    full = _float64(values)
    return len(pd.unique(full[~np.isnan(full)]))


def _n_unique_both(kind: ColumnType, ref: Any, cur: Any) -> int:
    """Distinct non-missing values of reference and current together (Evidently's count)."""
    if kind == "numeric":
        both = np.concatenate([_float64(ref), _float64(cur)])
        return len(pd.unique(both[~np.isnan(both)]))
    sides = [_to_numpy(v) for v in (ref, cur)]
    both = np.concatenate([v[~missing_mask(v)] for v in sides])
    return len(pd.unique(both.astype(str)))


def _statistic(test: DriftTest, kind: ColumnType, ref: Any, cur: Any) -> tuple[float, float | None]:
    """Runs one column's test, converting (and, where the test needs it, filtering) each side."""
    if kind == "numeric":
        ref, cur = _float64(ref), _float64(cur)
        if not test.accepts_nan:
            ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
        return test.compute(ref, cur)
    counts_arrow = isinstance(test, CountDriftTest)
    sides = []
    for values in (ref, cur):
        if counts_arrow and _is_arrow_string(values):
            sides.append(pc.drop_null(values))  # counted by Arrow, see value_counts
        else:
            values = _to_numpy(values)
            sides.append(values[~missing_mask(values)])
    return test.compute(sides[0], sides[1])


def drift_report(
    reference: Columns | Any,
    current: Columns | Any,
    *,
    column_types: Mapping[str, ColumnType] | None = None,
    columns: Sequence[str] | None = None,
    options: DriftOptions | None = None,
) -> DriftReport:
    """Tests every column of ``current`` for drift from ``reference``.

    Args:
        reference: Column name → 1-D array, or a pyarrow Table.
        current: The same columns for the window to check.
        column_types: ``"numeric"`` or ``"categorical"`` per column; by default
            int/float arrays are numeric and everything else categorical.
        columns: Which columns to test (default: all of the reference's).
        options: Test choice, overrides, multiple testing and the dataset rule.

    Returns:
        The frozen report. Missing values are dropped per column and their
        share reported; categories unseen in the reference count as drift
        evidence, not errors.

    Raises:
        DataError: A column is absent from ``current``, not numeric where
            declared so, or has no non-missing value on one side.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> ref = {"x": rng.normal(size=500), "c": rng.choice(["a", "b"], 500)}
        >>> cur = {"x": rng.normal(1.0, size=500), "c": rng.choice(["a", "b"], 500)}
        >>> drift_report(ref, cur).drifted_columns
        ['x']
    """
    options = options or DriftOptions()
    declared = dict(column_types or {})
    ref_cols, n_ref = _raw_columns(reference, "reference")
    cur_cols, n_cur = _raw_columns(current, "current")
    names = list(columns) if columns is not None else list(ref_cols)
    for name in names:
        for side, cols in (("reference", ref_cols), ("current", cur_cols)):
            if name not in cols:
                raise DataError(f"column {name!r} is missing from the {side} data")

    prepared: list[tuple[str, ColumnType, Any, Any, int, int]] = []
    for name in names:
        kind = infer_type(name, ref_cols[name], declared)
        ref, ref_missing = _prepare(name, kind, ref_cols[name], "reference")
        cur, cur_missing = _prepare(name, kind, cur_cols[name], "current")
        prepared.append((name, kind, ref, cur, ref_missing, cur_missing))

    def distinct(kind: ColumnType, ref: Any, cur: Any) -> int:
        if options.defaults == "evidently":
            return _n_unique_both(kind, ref, cur)
        return _n_unique_above(ref, 5) if kind == "numeric" else 0

    tests = [
        options.choose(name, kind, n_ref, distinct(kind, ref, cur))
        for name, kind, ref, cur, _, _ in prepared
    ]
    # One column at a time per thread keeps memory near a few copies of one column.
    stats_ = parallel_map(
        lambda i: _statistic(tests[i][0], prepared[i][1], prepared[i][2], prepared[i][3]),
        range(len(prepared)),
        n_ref + n_cur >= PARALLEL_MIN_VALUES,
    )
    results = [
        _Result(
            name,
            kind,
            tests[i][0],
            tests[i][1],
            *stats_[i],
            ref_miss / n_ref,
            cur_miss / n_cur,
            n_cur - cur_miss,
        )
        for i, (name, kind, _, _, ref_miss, cur_miss) in enumerate(prepared)
    ]
    return _assemble(results, options, n_ref, n_cur)
