"""drift_report and StreamingSummary: defaults, detection power, false alarms, errors."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats
from sklearn.datasets import load_breast_cancer

import mlcycle.monitor as monitor
from mlcycle.errors import DataError, SpecError
from mlcycle.monitor import (
    TESTS,
    DriftOptions,
    StreamingSummary,
    TestChoice,
    adjust_p_values,
    drift_report,
)
from mlcycle.monitor._run import drift_options
from mlcycle.spec import MonitorSpec, parse_spec


def _gaussian(n: int, k: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"x{j}": rng.normal(size=n) for j in range(k)}


def test_one_shifted_column_of_twenty_is_the_only_drift() -> None:
    ref, cur = _gaussian(5000, 20, 0), _gaussian(5000, 20, 1)
    cur["x7"] = cur["x7"] + 0.5
    report = drift_report(ref, cur)
    assert report.drifted_columns == ["x7"]
    assert {c.test for c in report.columns} == {"wasserstein"}
    assert not report.drift


def test_small_reference_defaults_to_ks_and_chi_squared() -> None:
    rng = np.random.default_rng(0)
    ref = {
        "x": rng.normal(size=500),
        "few": rng.integers(0, 3, 500),
        "c": rng.choice(["a", "b"], 500),
    }
    report = drift_report(ref, ref)
    assert [c.test for c in report.columns] == ["ks", "chi2", "chi2"]
    assert report.drifted_columns == []


def test_false_alarms_on_random_splits_of_breast_cancer() -> None:
    data = load_breast_cancer().data
    alarms = 0
    for seed in range(100):
        idx = np.random.default_rng(seed).permutation(len(data))
        half = len(data) // 2
        ref = {f"f{j}": data[idx[:half], j] for j in range(data.shape[1])}
        cur = {f"f{j}": data[idx[half:], j] for j in range(data.shape[1])}
        alarms += drift_report(ref, cur).drift
    assert alarms <= 5


@pytest.mark.slow
def test_large_sample_ignores_tiny_shift_and_finds_real_ones() -> None:
    ref, cur = _gaussian(100_000, 20, 2), _gaussian(100_000, 20, 3)
    tiny = {k: v + 0.02 for k, v in cur.items()}
    assert drift_report(ref, tiny).drifted_columns == []
    shifted = dict(cur)
    for j in (1, 4, 9, 13, 18):
        shifted[f"x{j}"] = cur[f"x{j}"] + 0.25
    assert drift_report(ref, shifted).drifted_columns == ["x1", "x4", "x9", "x13", "x18"]


def test_missing_values_unseen_categories_and_json() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=2000)
    x[:200] = np.nan
    c = rng.choice(["a", "b", None], 2000).astype(object)
    cur_c = np.array(["a"] * 1000 + ["zzz"] * 1000, dtype=object)
    table = pa.table({"x": x, "c": c})
    report = drift_report(table, {"x": rng.normal(size=2000), "c": cur_c})
    x_col, c_col = report.columns
    assert x_col.missing_reference == pytest.approx(0.1)
    assert c_col.missing_reference == pytest.approx(np.mean(c == None))  # noqa: E711
    assert c_col.test == "jensenshannon" and c_col.drift
    data = json.loads(json.dumps(report.to_dict()))
    assert set(data["columns"][0]) >= {
        "column",
        "type",
        "test",
        "statistic",
        "p_value",
        "adjusted_p_value",
        "threshold",
        "drift",
    }
    assert data["dataset"]["n_reference"] == 2000 and data["dataset"]["share_drifted"] == 0.5


def test_arrow_columns_give_the_same_report_as_numpy() -> None:
    # Arrow strings are counted by Arrow and numbers converted column by column (in threads
    # at this size); the report must not depend on the container.
    rng = np.random.default_rng(8)
    n = 60_000

    def side(shift: float) -> dict[str, np.ndarray]:
        x = rng.normal(shift, size=n)
        x[rng.random(n) < 0.05] = np.nan
        c = rng.choice(np.array(["a", "b", "c", None], dtype=object), n, p=[0.5, 0.3, 0.1, 0.1])
        return {"x": x, "k": rng.integers(0, 50, n), "few": rng.integers(0, 3, n), "c": c}

    ref, cur = side(0.0), side(0.2)
    ref_table = pa.table({**ref, "k": pa.array(ref["k"], mask=rng.random(n) < 0.1)})
    ref_numpy = {**ref, "k": ref_table.column("k").to_numpy()}  # nulls as NaN
    from_arrow = drift_report(ref_table, pa.table(cur)).to_dict()
    from_numpy = drift_report(ref_numpy, cur).to_dict()
    assert [c["test"] for c in from_arrow["columns"]] == [
        "wasserstein",
        "wasserstein",
        "jensenshannon",
        "jensenshannon",
    ]
    for a, b in zip(from_arrow["columns"], from_numpy["columns"], strict=True):
        assert a["statistic"] == pytest.approx(b["statistic"], abs=1e-12)
        assert {k: v for k, v in a.items() if k != "statistic"} == {
            k: v for k, v in b.items() if k != "statistic"
        }
    assert from_arrow["columns"][1]["missing_reference"] == pytest.approx(0.1, abs=0.01)
    assert from_arrow["columns"][3]["missing_current"] == pytest.approx(0.1, abs=0.01)


def test_empty_and_absent_columns_are_data_errors() -> None:
    with pytest.raises(DataError, match="column 'x' has no non-missing values in the current"):
        drift_report({"x": np.ones(10)}, {"x": np.full(10, np.nan)})
    with pytest.raises(DataError, match="column 'y' is missing from the current"):
        drift_report({"y": np.ones(10)}, {"x": np.ones(10)})
    with pytest.raises(DataError, match="expected numbers"):
        drift_report(
            {"x": np.array(["a"], dtype=object)}, {"x": np.ones(1)}, column_types={"x": "numeric"}
        )
    with pytest.raises(SpecError):
        TestChoice("t-test")


def test_overrides_and_multiple_testing() -> None:
    ref, cur = _gaussian(300, 3, 5), _gaussian(300, 3, 6)
    options = DriftOptions(
        tests={"x0": TestChoice("psi", 0.05), "x1": TestChoice("ks", 0.5)},
        multiple_testing="bonferroni",
    )
    report = drift_report(ref, cur, options=options)
    assert [c.test for c in report.columns] == ["psi", "ks", "ks"]
    assert report.columns[0].p_value is None and report.columns[0].threshold == 0.05
    p = np.array([c.p_value for c in report.columns[1:]])
    assert [c.adjusted_p_value for c in report.columns[1:]] == pytest.approx(np.minimum(2 * p, 1))
    assert adjust_p_values(np.array([0.01, 0.04, 0.03]), "benjamini-hochberg") == pytest.approx(
        [0.03, 0.04, 0.04]
    )


def test_streaming_counts_equal_the_whole_window() -> None:
    rng = np.random.default_rng(7)
    ref = {"x": rng.normal(size=3000), "c": rng.choice(["a", "b", "c"], 3000)}
    cur = {"x": rng.normal(0.3, size=4000), "c": rng.choice(["a", "b", "d"], 4000)}
    summary = StreamingSummary(ref)
    for start in range(0, 4000, 1000):
        summary.update(pa.table({k: v[start : start + 1000] for k, v in cur.items()}))
    streamed = summary.report()
    whole = drift_report(
        ref,
        cur,
        options=DriftOptions(
            tests={"x": TestChoice("jensenshannon"), "c": TestChoice("jensenshannon")}
        ),
    )
    for s, w in zip(streamed.columns, whole.columns, strict=True):
        assert s.statistic == pytest.approx(w.statistic, abs=1e-12)
    assert streamed.n_current == 4000 and streamed.drifted_columns == ["x", "c"]
    with pytest.raises(SpecError, match="does not stream"):
        summary.report(DriftOptions(tests={"x": TestChoice("ks")}))


def test_one_row_gives_no_verdict_where_it_used_to_drift_every_input() -> None:
    ref = _gaussian(5000, 8, 0)
    one = {k: v[:1] for k, v in _gaussian(1, 8, 1).items()}
    report = drift_report(ref, one)
    assert {c.test for c in report.columns} == {"wasserstein"}
    assert report.drift is None and report.drifted_columns == []
    assert all(c.drift is None and c.rows == 1 and c.min_rows == 1000 for c in report.columns)
    assert report.undecided_columns == list(ref)
    assert report.to_dict()["dataset"]["drift"] is None
    forced = drift_report(ref, one, options=DriftOptions(min_rows=1))
    assert forced.drift is True  # what the statistic alone says of one row: every input "drifts"


def test_a_column_needs_its_tests_minimum_of_non_missing_values() -> None:
    rng = np.random.default_rng(3)
    ref = {"x": rng.normal(size=500), "c": rng.choice(["a", "b", "c"], 500)}
    x = rng.normal(size=40)
    x[:15] = np.nan  # 25 values left, fewer than KS's 30
    report = drift_report(ref, {"x": x, "c": rng.choice(["a", "b", "c"], 40)})
    by_name = {c.column: c for c in report.columns}
    assert by_name["x"].test == "ks" and by_name["x"].drift is None and by_name["x"].rows == 25
    assert by_name["c"].test == "chi2" and by_name["c"].drift is False
    assert report.drift is None  # the dataset needs a verdict on every column
    streamed = StreamingSummary(ref)
    streamed.update({"x": x[:20], "c": np.array(["a"] * 20)})
    assert streamed.report().drift is None


@pytest.mark.parametrize(
    ("test", "categorical"),
    [("wasserstein", False), ("jensenshannon", False), ("jensenshannon", True), ("psi", False)],
)
def test_distance_tests_hold_the_false_alarm_rate_from_their_minimum(
    test: str, categorical: bool
) -> None:
    # The minimums come from a larger simulation (see mlcycle.monitor._report); this checks the
    # direction on a smaller one: at min_rows few windows without a shift are flagged, at a
    # fifth of it most are.
    rng = np.random.default_rng(11)
    drift_test = TESTS[test]()
    levels = np.array([f"c{i}" for i in range(20)], dtype=object)
    p = np.r_[np.full(10, 0.08), np.full(10, 0.02)]

    def draw(n: int) -> np.ndarray:
        return rng.choice(levels, n, p=p) if categorical else rng.lognormal(size=n)

    def false_alarms(n: int, windows: int = 200) -> float:
        flagged = 0
        for _ in range(windows):
            statistic, _ = drift_test.compute(draw(5000), draw(n))
            flagged += statistic >= drift_test.default_threshold
        return flagged / windows

    assert false_alarms(drift_test.min_rows) <= 0.08
    assert false_alarms(drift_test.min_rows // 5) >= 0.3


def test_evidently_defaults_reproduce_scipy_goodness_of_fit() -> None:
    ref = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 20, dtype=object)
    cur = np.array(["a"] * 40 + ["b"] * 40 + ["c"] * 20, dtype=object)
    evidently = DriftOptions(defaults="evidently")
    column = drift_report({"c": ref}, {"c": cur}, options=evidently).columns[0]
    expected = stats.chisquare([40, 40, 20], [50, 30, 20])  # current vs reference proportions
    assert column.test == "chi2_gof"
    assert column.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert column.p_value == pytest.approx(expected.pvalue, rel=1e-12)
    ours = drift_report({"c": ref}, {"c": cur}).columns[0]
    homogeneity = stats.chi2_contingency(np.array([[50, 30, 20], [40, 40, 20]]))
    assert ours.test == "chi2" and ours.p_value == pytest.approx(homogeneity.pvalue)
    assert ours.p_value > column.p_value  # homogeneity counts the reference's own noise

    two = drift_report({"c": ref[:80]}, {"c": cur[:80]}, options=evidently).columns[0]
    pooled = stats.chi2_contingency(np.array([[50, 30], [40, 40]]), correction=False)
    assert two.test == "z" and two.p_value == pytest.approx(pooled.pvalue, rel=1e-9)
    assert two.statistic == pytest.approx(np.sqrt(pooled.statistic), rel=1e-9)

    unseen = drift_report({"c": ref}, {"c": np.r_[cur, ["d"]]}, options=evidently).columns[0]
    assert unseen.statistic == np.inf and unseen.p_value == 0.0  # as Evidently: no expected count

    # distinct values: ours counts the reference (5 values: chi2), Evidently's both sides (KS)
    few = {"k": np.tile(np.arange(5.0), 60)}
    more = {"k": np.tile(np.arange(6.0), 50)}
    assert drift_report(few, more).columns[0].test == "chi2"
    assert drift_report(few, more, options=evidently).columns[0].test == "ks"

    spec = MonitorSpec.model_validate({"defaults": "evidently", "min_rows": 50})
    options = drift_options(spec)
    assert options.defaults == "evidently" and options.min_rows == 50
    with pytest.raises(SpecError, match="defaults"):
        DriftOptions(defaults="scipy")  # type: ignore[arg-type]
    streamed = StreamingSummary({"c": ref})
    streamed.update({"c": cur})
    assert streamed.report(evidently).columns[0].statistic == pytest.approx(expected.statistic)


def test_the_spec_accepts_every_drift_test_and_lists_them_on_a_typo() -> None:
    for name in TESTS:
        assert MonitorSpec.model_validate({"columns": {"x": {"test": name}}})
    with pytest.raises(SpecError, match=r"monitor.columns.x.test: 'kss': unknown drift test; "):
        parse_spec({"monitor": {"columns": {"x": {"test": "kss"}}}})


def test_public_surface() -> None:
    assert "drift_report" in monitor.__all__ and "DriftTest" in monitor.__all__
    assert all(hasattr(monitor, name) for name in monitor.__all__)
