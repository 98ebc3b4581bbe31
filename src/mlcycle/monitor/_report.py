"""Per-column drift of a current sample against a reference, and the dataset verdict.

Defaults follow Evidently's ``_get_default_stattest`` so its users recognise
them: with a reference of at most 1,000 rows, numeric columns with more than 5
distinct reference values use KS (p ≤ 0.05) and all others chi-squared
(p ≤ 0.05; Evidently uses a Z-test for two values); with a larger reference,
numeric columns use the normalised Wasserstein distance (≥ 0.1) and the others
Jensen-Shannon (≥ 0.1). Large-sample defaults are distances on purpose: at
100k rows a p-value flags shifts too small to matter.

P-values are corrected for multiple testing across the p-value columns,
Benjamini-Hochberg by default (Evidently applies no correction: pass
``multiple_testing="none"`` to reproduce it). The dataset drifts when the share
of drifted columns is at least ``drift_share`` (0.5).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from mlcycle.errors import DataError, SpecError
from mlcycle.monitor._base import DriftTest
from mlcycle.monitor._counts import (
    DEFAULT_BINS,
    ChiSquaredTest,
    CountDriftTest,
    JensenShannonTest,
    PSITest,
    is_numeric,
)
from mlcycle.monitor._numeric import PARALLEL_MIN_VALUES, KSTest, WassersteinTest, parallel_map

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
Columns = Mapping[str, Any]

TESTS: dict[str, Callable[[], DriftTest]] = {
    "ks": KSTest,
    "chi2": ChiSquaredTest,
    "wasserstein": WassersteinTest,
    "jensenshannon": JensenShannonTest,
    "psi": PSITest,
}


@dataclass(frozen=True)
class TestChoice:
    """A per-column override: a test name from :data:`TESTS` and its threshold (None: the test's default)."""

    __test__ = False  # not a pytest class, whatever its name

    test: str
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.test not in TESTS:
            raise SpecError(f"drift test {self.test!r} is unknown; expected one of {sorted(TESTS)}")


@dataclass(frozen=True)
class DriftOptions:
    """How :func:`drift_report` chooses tests and decides.

    Attributes:
        tests: Per-column overrides of the default test.
        multiple_testing: Correction over the p-value columns.
        drift_share: Share of drifted columns at or above which the dataset drifts.
        small_sample_max: Largest reference size that still gets the p-value defaults.
        n_bins: Reference-quantile bins for Jensen-Shannon, PSI and chi-squared on numeric columns.
    """

    tests: Mapping[str, TestChoice] = field(default_factory=dict)
    multiple_testing: Correction = "benjamini-hochberg"
    drift_share: float = 0.5
    small_sample_max: int = 1000
    n_bins: int = DEFAULT_BINS

    def __post_init__(self) -> None:
        if self.multiple_testing not in ("none", "bonferroni", "benjamini-hochberg"):
            raise SpecError(
                f"multiple_testing: {self.multiple_testing!r} is not one of "
                "'none', 'bonferroni', 'benjamini-hochberg'"
            )
        if not 0 < self.drift_share <= 1:
            raise SpecError(f"drift_share: {self.drift_share} is not in (0, 1]")

    def choose(
        self, column: str, column_type: ColumnType, n_reference: int, n_unique: int
    ) -> tuple[DriftTest, float]:
        """The test and threshold for one column (override, else Evidently's default)."""
        choice = self.tests.get(column)
        if choice is None:
            numeric = column_type == "numeric" and n_unique > 5
            if n_reference <= self.small_sample_max:
                choice = TestChoice("ks" if numeric else "chi2")
            else:
                choice = TestChoice("wasserstein" if numeric else "jensenshannon")
        test = TESTS[choice.test]()
        if isinstance(test, CountDriftTest):
            test.n_bins = self.n_bins
        threshold = test.default_threshold if choice.threshold is None else choice.threshold
        return test, threshold


@dataclass(frozen=True)
class ColumnDrift:
    """The drift verdict of one column. Missing shares are of all rows on that side."""

    column: str
    type: ColumnType
    test: str
    statistic: float
    p_value: float | None
    adjusted_p_value: float | None
    threshold: float
    drift: bool
    missing_reference: float
    missing_current: float


@dataclass(frozen=True)
class DriftReport:
    """Per-column drift and the dataset-level verdict; :meth:`to_dict` is JSON-able."""

    columns: tuple[ColumnDrift, ...]
    share_drifted: float
    drift: bool
    n_reference: int
    n_current: int
    drift_share: float
    multiple_testing: Correction

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the columns that drifted, in report order."""
        return [c.column for c in self.columns if c.drift]

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
        drift = adj <= r.threshold if adj is not None else r.statistic >= r.threshold
        columns.append(
            ColumnDrift(
                column=r.column,
                type=r.type,
                test=r.test.name,
                statistic=float(r.statistic),
                p_value=r.p_value,
                adjusted_p_value=adj,
                threshold=r.threshold,
                drift=bool(drift),
                missing_reference=r.missing_reference,
                missing_current=r.missing_current,
            )
        )
    share = sum(c.drift for c in columns) / len(columns) if columns else 0.0
    return DriftReport(
        tuple(columns),
        share,
        bool(columns) and share >= options.drift_share,
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


def _prepare(name: str, kind: ColumnType, values: Any, side: str) -> tuple[Any, float]:
    """The column ready for its test (Arrow numbers and strings kept lazily) and its missing share."""
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
    return values, missing / len(values)


def _n_unique_above(values: Any, limit: int) -> int:
    """Distinct non-missing values of a numeric column, exact up to ``limit + 1`` (cheap on large columns)."""
    head = _float64(values[: 100 * (limit + 1)])
    n = len(pd.unique(head[~np.isnan(head)]))
    if n > limit:
        return n
    full = _float64(values)
    return len(pd.unique(full[~np.isnan(full)]))


def _statistic(test: DriftTest, kind: ColumnType, ref: Any, cur: Any) -> tuple[float, float | None]:
    """Runs one column's test, converting (and, where the test needs it, filtering) each side."""
    if kind == "numeric":
        ref, cur = _float64(ref), _float64(cur)
        if type(test) not in (KSTest, WassersteinTest):  # these two ignore NaN themselves
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

    prepared: list[tuple[str, ColumnType, Any, Any, float, float]] = []
    for name in names:
        kind = infer_type(name, ref_cols[name], declared)
        ref, ref_missing = _prepare(name, kind, ref_cols[name], "reference")
        cur, cur_missing = _prepare(name, kind, cur_cols[name], "current")
        prepared.append((name, kind, ref, cur, ref_missing, cur_missing))

    tests = [
        options.choose(name, kind, n_ref, _n_unique_above(ref, 5) if kind == "numeric" else 0)
        for name, kind, ref, _, _, _ in prepared
    ]
    # One column at a time per thread keeps memory near a few copies of one column.
    stats_ = parallel_map(
        lambda i: _statistic(tests[i][0], prepared[i][1], prepared[i][2], prepared[i][3]),
        range(len(prepared)),
        n_ref + n_cur >= PARALLEL_MIN_VALUES,
    )
    results = [
        _Result(name, kind, tests[i][0], tests[i][1], *stats_[i], ref_miss, cur_miss)
        for i, (name, kind, _, _, ref_miss, cur_miss) in enumerate(prepared)
    ]
    return _assemble(results, options, n_ref, n_cur)
