"""Every registered drift test runs the conformance suite; a new one is one class."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import special, stats
from scipy.spatial import distance

from mlcycle.errors import SpecError
from mlcycle.monitor import DriftOptions, DriftTest, TestChoice, drift_report
from mlcycle.plugins import DRIFT_TESTS
from mlcycle.spec import parse_spec
from tests.conformance.drift_tests import DriftTestConformance, category_counts


class TestKS(DriftTestConformance):
    name = "ks"

    def reference(self, ref: NDArray[Any], cur: NDArray[Any]) -> tuple[float, float | None]:
        result = stats.ks_2samp(ref, cur)
        return float(result.statistic), float(result.pvalue)


class TestWasserstein(DriftTestConformance):
    name = "wasserstein"

    def reference(self, ref: NDArray[Any], cur: NDArray[Any]) -> tuple[float, float | None]:
        return stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001), None


class TestChiSquared(DriftTestConformance):
    name = "chi2"
    numeric = False

    def reference(self, ref: NDArray[Any], cur: NDArray[Any]) -> tuple[float, float | None]:
        result = stats.chi2_contingency(np.array(category_counts(ref, cur)))
        return float(result.statistic), float(result.pvalue)


class TestChiSquaredGoodnessOfFit(DriftTestConformance):
    name = "chi2_gof"
    numeric = False

    def reference(self, ref: NDArray[Any], cur: NDArray[Any]) -> tuple[float, float | None]:
        r, c = category_counts(ref, cur)
        result = stats.chisquare(c, r * c.sum() / r.sum())
        return float(result.statistic), float(result.pvalue)


class TestZ(DriftTestConformance):
    name = "z"
    numeric = False

    def reference(self, ref: NDArray[Any], cur: NDArray[Any]) -> tuple[float, float | None]:
        # Pooled two-proportion z-test of the reference's most frequent category: z² is
        # Pearson's chi-squared on the 2 x 2 table without Yates' correction.
        r, c = category_counts(ref, cur)
        first = int(np.argmax(r))
        table = [[r[first], r.sum() - r[first]], [c[first], c.sum() - c[first]]]
        result = stats.chi2_contingency(np.array(table), correction=False)
        return float(np.sqrt(result.statistic)), float(result.pvalue)


class TestJensenShannon(DriftTestConformance):
    name = "jensenshannon"
    numeric = False

    def reference(self, ref: NDArray[Any], cur: NDArray[Any]) -> tuple[float, float | None]:
        return float(distance.jensenshannon(*category_counts(ref, cur))), None


class TestPSI(DriftTestConformance):
    name = "psi"
    numeric = False

    def reference(self, ref: NDArray[Any], cur: NDArray[Any]) -> tuple[float, float | None]:
        # PSI is the symmetrised Kullback-Leibler divergence of the proportions.
        r, c = (np.maximum(x / x.sum(), 1e-4) for x in category_counts(ref, cur))
        return float(np.sum(special.rel_entr(c, r) + special.rel_entr(r, c))), None


def test_every_built_in_runs_the_suite() -> None:
    covered = {cls.name for cls in DriftTestConformance.__subclasses__()}
    assert set(DRIFT_TESTS.names()) <= covered | {"mean_shift"}


class MeanShift(DriftTest):
    """A toy drift test, as a user would write it in one file."""

    name = "mean_shift"
    kind = "distance"
    default_threshold = 0.2

    def compute(
        self, reference: NDArray[np.generic], current: NDArray[np.generic]
    ) -> tuple[float, float | None]:
        ref = np.asarray(reference, dtype=np.float64)
        std = max(float(np.std(ref)), 1e-3)
        return abs(float(np.mean(current)) - float(np.mean(ref))) / std, None


@pytest.fixture
def mean_shift() -> Any:
    DRIFT_TESTS.register("mean_shift")(MeanShift)
    yield MeanShift
    DRIFT_TESTS.unregister("mean_shift")


@pytest.mark.usefixtures("mean_shift")
class TestMeanShift(DriftTestConformance):
    """A new drift test: its class and one registration line, and it passes the suite."""

    name = "mean_shift"

    def reference(self, ref: NDArray[Any], cur: NDArray[Any]) -> tuple[float, float | None]:
        return abs(float(np.mean(cur) - np.mean(ref))) / max(float(np.std(ref)), 1e-3), None

    def test_the_spec_accepts_it_and_the_report_runs_it(self) -> None:
        spec = parse_spec({"monitor": {"columns": {"x": {"test": "mean_shift"}}}})
        assert spec.monitor.columns["x"].test == "mean_shift"
        rng = np.random.default_rng(0)
        options = DriftOptions(tests={"x": TestChoice("mean_shift")})
        report = drift_report(
            {"x": rng.normal(size=500)}, {"x": rng.normal(1.0, size=500)}, options=options
        )
        assert report.columns[0].test == "mean_shift" and report.drifted_columns == ["x"]


def test_an_unregistered_test_is_refused_with_the_registered_names() -> None:
    with pytest.raises(SpecError, match="unknown drift test; registered: chi2, chi2_gof"):
        parse_spec({"monitor": {"columns": {"x": {"test": "mean_shift"}}}})
    with pytest.raises(SpecError, match="unknown drift test 'mean_shift'; registered: chi2"):
        TestChoice("mean_shift")
