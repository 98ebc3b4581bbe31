"""Agreement of each drift test with scipy, on real columns and on edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance
from sklearn.datasets import load_breast_cancer, load_wine

from mlcycle.monitor import (
    ChiSquaredTest,
    JensenShannonTest,
    KSTest,
    PSITest,
    WassersteinTest,
    binned_counts,
)

CANCER = load_breast_cancer().data
WINE = load_wine().data


def _split(x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    idx = np.random.default_rng(seed).permutation(len(x))
    return x[idx[: len(x) // 2]], x[idx[len(x) // 2 :]]


@pytest.mark.parametrize(
    ("n_ref", "n_cur"), [(5, 7), (40, 40), (284, 285), (3000, 2000), (12000, 9000), (100, 30000)]
)
def test_ks_matches_scipy_exact_and_asymptotic(n_ref: int, n_cur: int) -> None:
    rng = np.random.default_rng(n_ref)
    ref = np.round(rng.normal(size=(n_ref, 3)), 1)  # ties on purpose
    cur = np.round(rng.normal(0.05, size=(n_cur, 3)), 1)
    statistics, p_values = KSTest().compute_many(ref, cur)
    assert p_values is not None
    for j in range(3):
        expected = stats.ks_2samp(ref[:, j], cur[:, j], method="auto")
        assert statistics[j] == pytest.approx(expected.statistic, abs=1e-9)
        assert p_values[j] == pytest.approx(expected.pvalue, abs=1e-9)


def test_ks_and_wasserstein_match_scipy_on_real_columns() -> None:
    ref, cur = _split(CANCER)
    statistics, p_values = KSTest().compute_many(ref, cur)
    raw, _ = WassersteinTest(normalize=False).compute_many(ref, cur)
    norm, _ = WassersteinTest().compute_many(ref, cur)
    assert p_values is not None
    for j in range(ref.shape[1]):
        expected = stats.ks_2samp(ref[:, j], cur[:, j], method="auto")
        assert statistics[j] == pytest.approx(expected.statistic, abs=1e-9)
        assert p_values[j] == pytest.approx(expected.pvalue, abs=1e-9)
        w = stats.wasserstein_distance(ref[:, j], cur[:, j])
        assert raw[j] == pytest.approx(w, abs=1e-9)
        assert norm[j] == pytest.approx(w / max(np.std(ref[:, j]), 0.001), rel=1e-9)


def test_nan_are_ignored_per_column() -> None:
    rng = np.random.default_rng(1)
    ref, cur = rng.normal(size=(300, 2)), rng.normal(size=(200, 2))
    ref[[3, 50], 0] = np.nan
    cur[7, 1] = np.nan
    statistics, p_values = KSTest().compute_many(ref, cur)
    raw, _ = WassersteinTest(normalize=False).compute_many(ref, cur)
    assert p_values is not None
    for j in range(2):
        r, c = ref[~np.isnan(ref[:, j]), j], cur[~np.isnan(cur[:, j]), j]
        assert statistics[j] == pytest.approx(stats.ks_2samp(r, c).statistic, abs=1e-9)
        assert p_values[j] == pytest.approx(stats.ks_2samp(r, c).pvalue, abs=1e-9)
        assert raw[j] == pytest.approx(stats.wasserstein_distance(r, c), abs=1e-9)


def test_large_columns_in_threads_match_scipy() -> None:
    # Past PARALLEL_MIN_VALUES the columns run on worker threads; unequal sizes, ties and NaN.
    rng = np.random.default_rng(11)
    ref = np.round(rng.normal(size=(70_000, 3)), 3)
    cur = np.round(rng.normal(0.03, 1.1, size=(50_000, 3)), 3)
    ref[rng.random(70_000) < 0.01, 1] = np.nan
    cur[rng.random(50_000) < 0.02, 2] = np.nan
    statistics, p_values = KSTest().compute_many(ref, cur)
    raw, _ = WassersteinTest(normalize=False).compute_many(ref, cur)
    norm, _ = WassersteinTest().compute_many(ref, cur)
    assert p_values is not None
    for j in range(3):
        r, c = ref[~np.isnan(ref[:, j]), j], cur[~np.isnan(cur[:, j]), j]
        expected = stats.ks_2samp(r, c)
        assert statistics[j] == pytest.approx(expected.statistic, abs=1e-9)
        assert p_values[j] == pytest.approx(expected.pvalue, abs=1e-9)
        w = stats.wasserstein_distance(r, c)
        assert raw[j] == pytest.approx(w, abs=1e-9)
        assert norm[j] == pytest.approx(w / np.std(r), rel=1e-9)


@pytest.mark.parametrize("categories", [2, 3, 6])
def test_chi_squared_matches_chi2_contingency(categories: int) -> None:
    rng = np.random.default_rng(categories)
    ref = rng.integers(0, categories, 400).astype(str)
    cur = rng.integers(0, categories, 300).astype(str)
    r, c = binned_counts(ref, cur)
    expected = stats.chi2_contingency(np.vstack([r, c]))  # Yates only when dof == 1
    statistic, p_value = ChiSquaredTest().compute(ref, cur)
    assert statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert p_value == pytest.approx(expected.pvalue, abs=1e-9)


def test_chi_squared_on_wine_classes_and_unseen_category() -> None:
    target = load_wine().target.astype(str)
    ref, cur = target[:100], np.concatenate([target[100:], ["new"] * 5])
    r, c = binned_counts(ref, cur)
    assert r[-1] == 0 and c[-1] == 5
    statistic, p_value = ChiSquaredTest().compute(ref, cur)
    expected = stats.chi2_contingency(np.vstack([r, c]))
    assert (statistic, p_value) == pytest.approx((expected.statistic, expected.pvalue), abs=1e-9)
    assert ChiSquaredTest().compute(np.array(["a"] * 3), np.array(["a"])) == (0.0, 1.0)


def test_jensen_shannon_matches_scipy_on_reference_bins() -> None:
    ref, cur = _split(WINE, seed=3)
    for j in range(ref.shape[1]):
        r, c = binned_counts(ref[:, j], cur[:, j], n_bins=10)
        statistic, _ = JensenShannonTest(n_bins=10).compute(ref[:, j], cur[:, j])
        assert statistic == pytest.approx(
            distance.jensenshannon(r / r.sum(), c / c.sum()), abs=1e-9
        )
        base2, _ = JensenShannonTest(n_bins=10, base=2).compute(ref[:, j], cur[:, j])
        assert base2 == pytest.approx(distance.jensenshannon(r, c, base=2), abs=1e-9)


def test_binning_uses_reference_quantiles_and_open_outer_bins() -> None:
    ref = np.arange(100.0)
    r, c = binned_counts(ref, np.array([-1e9, 50.0, 1e9]), n_bins=4)
    assert r.tolist() == [25, 25, 25, 25]
    assert c.tolist() == [1, 0, 1, 1]


def test_psi_formula_and_epsilon() -> None:
    r, c = np.array([50, 30, 20]), np.array([40, 30, 30])
    p, q = r / 100, c / 100
    assert PSITest().from_counts(r, c)[0] == pytest.approx(np.sum((q - p) * np.log(q / p)))
    p0, q0 = np.array([0.5, 0.5, 1e-4]), np.array([0.5, 0.3, 0.2])
    value = PSITest().from_counts(np.array([5, 5, 0]), np.array([5, 3, 2]))[0]
    assert value == pytest.approx(
        np.sum((q0 - np.array([0.5, 0.5, 0.0]).clip(1e-4)) * np.log(q0 / p0))
    )
