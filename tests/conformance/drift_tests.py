"""The conformance suite of drift tests (:class:`mlcycle.monitor.DriftTest`).

Subclass :class:`DriftTestConformance`, name the registered test and give its
scipy reference; pytest runs every check on it::

    class TestEnergy(DriftTestConformance):
        name = "energy"
        def reference(self, ref, cur):
            return scipy.stats.energy_distance(ref, cur), None
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats

from mlcycle.monitor import DriftOptions, DriftTest, TestChoice, drift_report
from mlcycle.plugins import DRIFT_TESTS

SHIFTS = (0.0, 0.1, 0.25, 0.5, 1.0)
CATEGORIES = np.array(["a", "b", "c", "d"], dtype=object)


def category_counts(
    reference: NDArray[Any], current: NDArray[Any]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Counts over the union of categories, reference first: what a scipy oracle is given."""
    ref, cur = Counter(reference.tolist()), Counter(current.tolist())
    keys = list(ref) + [k for k in cur if k not in ref]
    return np.array([ref[k] for k in keys]), np.array([cur[k] for k in keys])


class DriftTestConformance:
    """What every drift test must do. Subclasses set :attr:`name` and :meth:`reference`.

    ``numeric`` says which data the test is meant for: numbers (shifted
    normals) or categories (four categories whose mass moves to one).
    """

    name: ClassVar[str]
    numeric: ClassVar[bool] = True

    def make(self) -> DriftTest:
        return DRIFT_TESTS.get(self.name)()

    def reference(self, ref: NDArray[Any], cur: NDArray[Any]) -> tuple[float, float | None]:
        """``(statistic, p_value)`` as scipy computes them."""
        raise NotImplementedError

    def sample(self, shift: float, n: int = 400) -> tuple[NDArray[Any], NDArray[Any]]:
        """A deterministic reference and a current sample moved by ``shift`` (0: the same)."""
        if self.numeric:
            ref = stats.norm.ppf((np.arange(n) + 0.5) / n)
            return ref, ref + shift
        base = np.array([0.4, 0.3, 0.2, 0.1])
        moved = (1 - shift) * base + shift * np.array([0.0, 0.0, 0.0, 1.0])
        ref = np.repeat(CATEGORIES, np.round(base * n).astype(int))
        cur = np.repeat(CATEGORIES, np.round(moved * n).astype(int))
        return ref, cur

    def random(self, seed: int) -> tuple[NDArray[Any], NDArray[Any]]:
        rng = np.random.default_rng(seed)
        if self.numeric:
            return rng.normal(size=300), rng.normal(0.2, 1.1, size=250)
        p = [0.4, 0.3, 0.2, 0.1]
        return rng.choice(CATEGORIES, 300, p=p), rng.choice(CATEGORIES, 250, p=p[::-1])

    def test_is_registered_under_its_name(self) -> None:
        test = self.make()
        assert isinstance(test, DriftTest)
        assert test.name == self.name and self.name in DRIFT_TESTS
        assert test.kind in ("p_value", "distance") and test.default_threshold > 0
        assert test.min_rows >= 1

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_equals_scipy_reference(self, seed: int) -> None:
        ref, cur = self.random(seed)
        statistic, p_value = self.make().compute(ref, cur)
        expected_statistic, expected_p = self.reference(ref, cur)
        assert statistic == pytest.approx(expected_statistic, rel=1e-9, abs=1e-12)
        if expected_p is None:
            assert p_value is None
        else:
            assert p_value == pytest.approx(expected_p, rel=1e-6, abs=1e-12)

    def test_monotone_in_shift(self) -> None:
        test = self.make()
        results = [test.compute(*self.sample(shift)) for shift in SHIFTS]
        statistics = [s for s, _ in results]
        assert statistics == sorted(statistics), statistics
        assert statistics[-1] > statistics[0]
        if test.kind == "p_value":
            p_values = [p for _, p in results]
            assert p_values == sorted(p_values, reverse=True), p_values  # type: ignore[type-var]
            assert p_values[0] > test.default_threshold >= p_values[-1]  # type: ignore[operator]
        else:
            assert statistics[0] < test.default_threshold <= statistics[-1]

    def test_constant_columns(self) -> None:
        test = self.make()
        same = np.full(200, 3.0) if self.numeric else np.full(200, "a", dtype=object)
        other = np.full(200, 4.0) if self.numeric else np.full(200, "b", dtype=object)
        statistic, p_value = test.compute(same, same.copy())
        assert np.isfinite(statistic)
        if test.kind == "p_value":
            assert p_value is not None and p_value > test.default_threshold
        else:
            assert statistic < test.default_threshold
        statistic, p_value = test.compute(same, other)
        if test.kind == "p_value":
            assert p_value is not None and p_value <= test.default_threshold
        else:
            assert statistic >= test.default_threshold

    def test_nan(self) -> None:
        """Missing values are ignored: by the report, per column in ``compute_many``, and by
        ``compute`` itself when the test says it accepts NaN."""
        test = self.make()
        ref, cur = self.random(3)
        if self.numeric:
            ref_nan, cur_nan = ref.copy(), cur.copy()
            ref_nan[::7], cur_nan[::5] = np.nan, np.nan
            keep_ref, keep_cur = ~np.isnan(ref_nan), ~np.isnan(cur_nan)
        else:
            ref_nan, cur_nan = ref.copy(), cur.copy()
            ref_nan[::7], cur_nan[::5] = None, None
            keep_ref = np.array([v is not None for v in ref_nan])
            keep_cur = np.array([v is not None for v in cur_nan])
        clean = test.compute(ref_nan[keep_ref], cur_nan[keep_cur])
        options = DriftOptions(tests={"c": TestChoice(self.name)})
        column = drift_report({"c": ref_nan}, {"c": cur_nan}, options=options).columns[0]
        assert column.test == self.name
        assert column.statistic == pytest.approx(clean[0])
        assert column.missing_current == pytest.approx(1 - keep_cur.mean())
        if not self.numeric:
            return
        if test.accepts_nan:
            assert test.compute(ref_nan, cur_nan) == pytest.approx(clean)
        statistics, p_values = test.compute_many(
            np.column_stack([ref_nan, ref]), np.column_stack([cur_nan, cur])
        )
        assert statistics[0] == pytest.approx(clean[0])
        assert statistics[1] == pytest.approx(test.compute(ref, cur)[0])
        if test.kind == "p_value":
            assert p_values is not None and p_values[0] == pytest.approx(clean[1])
        else:
            assert p_values is None
