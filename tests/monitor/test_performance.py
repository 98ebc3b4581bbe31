"""Performance with late labels (join, windows, alerts) and without labels (CBPE), on real data.

The models are quick scikit-learn logistic regressions: what is tested is the
monitoring math on their real outputs, not the models. Digits is split into
train (600 rows), reference (the validation split, 500) and held-out windows
(697); a strongly regularised model (C=0.1) is under-confident, so CBPE only
works if its calibration does.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlcycle.errors import DataError, SpecError
from mlcycle.evaluate import classification_metrics, regression_metrics
from mlcycle.monitor import CBPE, Estimate, PerformanceResult, join_feedback, window_performance
from mlcycle.predictions import LoggedBatch, PredictionLog
from mlcycle.spec import PerformanceSpec

DIGITS = [str(c) for c in range(10)]
CANCER = ["malignant", "benign"]


@dataclass(frozen=True)
class Split:
    """A model's probabilities (or predictions) on the reference and on held-out rows."""

    ref_out: np.ndarray
    ref_y: np.ndarray
    out: np.ndarray
    y: np.ndarray
    x: np.ndarray


def _split(x: np.ndarray, y: np.ndarray, n_train: int, n_ref: int, seed: int = 0) -> tuple:
    idx = np.random.default_rng(seed).permutation(len(y))
    return idx[:n_train], idx[n_train : n_train + n_ref], idx[n_train + n_ref :]


@cache
def digits() -> Split:
    data = load_digits()
    train, ref, held = _split(data.data, data.target, 600, 500)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))
    model.fit(data.data[train], data.target[train])
    return Split(
        model.predict_proba(data.data[ref]),
        data.target[ref],
        model.predict_proba(data.data[held]),
        data.target[held],
        data.data[held],
    )


@cache
def cancer() -> Split:
    data = load_breast_cancer()
    train, ref, held = _split(data.data, data.target, 150, 250, seed=1)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))
    model.fit(data.data[train], data.target[train])
    return Split(
        model.predict_proba(data.data[ref]),
        data.target[ref],
        model.predict_proba(data.data[held]),
        data.target[held],
        data.data[held],
    )


@cache
def diabetes() -> Split:
    data = load_diabetes()
    train, ref, held = _split(data.data, data.target, 200, 100)
    model = Ridge(alpha=0.1).fit(data.data[train], data.target[train])
    return Split(
        model.predict(data.data[ref]),
        data.target[ref],
        model.predict(data.data[held]),
        data.target[held],
        data.data[held],
    )


def _window(n_rows: int, size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).choice(n_rows, size, replace=False)


# --- join_feedback ----------------------------------------------------------------------


def _pandas_join(predictions: pa.Table, feedback: pa.Table) -> pd.DataFrame:
    """The reference semantics, in pandas: latest feedback per id, latest prediction per id."""
    fb = feedback.to_pandas().reset_index(names="_row").dropna(subset=["request_id"])
    fb_keys = ["time", "_row"] if "time" in fb else ["_row"]
    fb = fb.sort_values(fb_keys, kind="stable").drop_duplicates("request_id", keep="last")
    fb = fb.rename(columns={"label": "actual", "time": "actual_time"})
    pr = predictions.to_pandas().reset_index(names="_row").dropna(subset=["request_id"])
    pr_keys = ["time", "_row"] if "time" in pr else ["_row"]
    pr = pr.sort_values(pr_keys, kind="stable").drop_duplicates("request_id", keep="last")
    pr = pr.sort_values("_row")
    merged = pr.merge(fb.drop(columns="_row"), on="request_id", how="inner")
    return merged.drop(columns="_row").reset_index(drop=True)


def test_join_feedback_on_the_prediction_log(tmp_path: Path) -> None:
    """Late labels through the real log: missing ones dropped, corrections win."""
    split = digits()
    log = PredictionLog(tmp_path, flush_interval_s=0.05)
    ids = [f"req-{i}" for i in range(300)]
    for start in range(0, 300, 100):
        rows = slice(start, start + 100)
        log.append(
            LoggedBatch(
                "digits",
                1,
                "serve",
                ids[rows],
                {"pixels": split.x[rows]},
                1.5,
                labels=np.array(DIGITS)[split.out[rows].argmax(axis=1)],
                probabilities=split.out[rows],
            )
        )
    truth = np.array(DIGITS)[split.y[:300]]
    # Labels come late and in pieces: the first 200 requests, a wrong label for
    # 50 of them corrected afterwards, and labels for requests never logged.
    log.feedback((ids[i], "wrong") for i in range(0, 50))
    time.sleep(0.01)
    log.feedback((ids[i], truth[i]) for i in range(200))
    log.feedback([("req-unknown-1", "3"), ("req-unknown-2", "4")])
    log.close()
    predictions, feedback = log.read(), log.read_feedback()
    assert feedback.num_rows == 252

    joined = join_feedback(predictions, feedback)
    assert joined.num_rows == 200
    assert joined["request_id"].to_pylist() == ids[:200]
    assert joined["actual"].to_pylist() == truth[:200].tolist()
    assert "actual_time" in joined.column_names
    expected = _pandas_join(predictions, feedback)
    assert joined.column("actual").to_pylist() == expected["actual"].tolist()
    assert joined.column("request_id").to_pylist() == expected["request_id"].tolist()
    # The probabilities ride along, and the window can be scored straight from the join.
    probabilities = np.asarray(joined["probabilities"].to_pylist())
    np.testing.assert_allclose(probabilities, split.out[:200], rtol=1e-6)


def test_join_feedback_matches_a_pandas_merge_with_duplicates_and_ties() -> None:
    rng = np.random.default_rng(0)
    n, m = 20_000, 15_000
    base = datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1e6
    ids = np.array([f"r{i}" for i in rng.integers(0, 16_000, n)], dtype=object)
    ids[rng.random(n) < 0.01] = None
    predictions = pa.table(
        {
            "time": pa.array((base + rng.integers(0, 1000, n)).astype(np.int64)).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "request_id": pa.array(ids, pa.string()),
            "value": pa.array(rng.normal(size=n)),
        }
    )
    fb_ids = np.array([f"r{i}" for i in rng.integers(0, 20_000, m)], dtype=object)
    feedback = pa.table(
        {
            "request_id": pa.array(fb_ids, pa.string()),
            "label": pa.array(rng.integers(0, 5, m).astype(str)),
            # Few distinct times, so ties are common and the later row must win them.
            "time": pa.array((base + rng.integers(0, 20, m)).astype(np.int64)).cast(
                pa.timestamp("us", tz="UTC")
            ),
        }
    )
    joined = join_feedback(predictions, feedback)
    expected = _pandas_join(predictions, feedback)
    assert joined.num_rows == len(expected) > 5000
    got = joined.to_pandas()
    for column in ["request_id", "value", "actual", "time", "actual_time"]:
        assert got[column].tolist() == expected[column].tolist(), column


def test_join_feedback_without_times_uses_row_order_and_handles_no_feedback() -> None:
    predictions = pa.table({"request_id": ["a", "b", "c", "d"], "label": ["x", "y", "x", "y"]})
    feedback = pa.table({"request_id": ["b", "a", "b", "zz"], "label": ["x", "x", "y", "x"]})
    joined = join_feedback(predictions, feedback)
    assert joined.to_pydict() == {
        "request_id": ["a", "b"],
        "label": ["x", "y"],
        "actual": ["x", "y"],
    }
    empty = join_feedback(predictions, pa.table({}))  # the log before any feedback
    assert empty.num_rows == 0 and "actual" in empty.column_names
    with pytest.raises(DataError, match=r"feedback: missing column\(s\) \['label'\]"):
        join_feedback(predictions, pa.table({"request_id": ["a"]}))
    with pytest.raises(DataError, match="predictions: missing column"):
        join_feedback(pa.table({"id": ["a"]}), feedback)


def test_join_feedback_is_fast_on_a_million_rows() -> None:
    n, m = 1_000_000, 600_000
    rng = np.random.default_rng(1)
    ids = np.char.add("req-", np.arange(n).astype(str))
    predictions = pa.table(
        {
            "time": pa.array(np.arange(n, dtype=np.int64)).cast(pa.timestamp("us", tz="UTC")),
            "request_id": pa.array(ids),
            "probabilities": pa.FixedSizeListArray.from_arrays(
                pa.array(rng.random(3 * n).astype(np.float32)), 3
            ),
        }
    )
    feedback = pa.table(
        {
            "request_id": pa.array(ids[rng.integers(0, n, m)]),
            "label": pa.array(rng.integers(0, 3, m).astype(str)),
            "time": pa.array(rng.integers(0, 10**9, m)).cast(pa.timestamp("us", tz="UTC")),
        }
    )
    start = time.perf_counter()
    joined = join_feedback(predictions, feedback)
    elapsed = time.perf_counter() - start
    assert 400_000 < joined.num_rows < 600_000
    assert elapsed < 10.0  # about 0.7 s on the 2-core development machine


# --- window_performance -----------------------------------------------------------------


def _reference(split: Split, classes: list[str]) -> dict[str, float]:
    return classification_metrics(split.ref_y, split.ref_out, classes)


def test_iid_windows_do_not_alert_and_match_evaluate() -> None:
    split = digits()
    reference = _reference(split, DIGITS)
    spec = PerformanceSpec()
    for seed in range(5):
        rows = _window(len(split.y), 200, seed)
        result = window_performance(
            task="multiclass",
            classes=DIGITS,
            y_true=split.y[rows],
            probabilities=split.out[rows],
            reference=reference,
            spec=spec,
            seed=seed,
        )
        assert not result.alert, result.reason
        assert result.metric == "accuracy" and result.n == 200 and result.higher_is_better
        expected = classification_metrics(split.y[rows], split.out[rows], DIGITS)
        for name in ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc"):
            assert result.metrics[name]["value"] == pytest.approx(expected[name], abs=1e-12)
            low, high = result.metrics[name]["low"], result.metrics[name]["high"]
            assert low is not None and high is not None and low <= expected[name] <= high
        assert result.value == expected["accuracy"]
        assert result.reference == reference["accuracy"]
        assert result.drop == pytest.approx(reference["accuracy"] - expected["accuracy"])
        json.dumps(result.to_dict())


def test_labels_as_class_names_from_the_feedback_give_the_same_result() -> None:
    split = digits()
    rows = _window(len(split.y), 150, 7)
    kwargs = {
        "task": "multiclass",
        "classes": DIGITS,
        "probabilities": split.out[rows],
        "reference": _reference(split, DIGITS),
        "spec": PerformanceSpec(),
    }
    by_index = window_performance(y_true=split.y[rows], **kwargs)
    by_name = window_performance(y_true=pa.array(np.array(DIGITS)[split.y[rows]]), **kwargs)
    assert by_index == by_name
    with pytest.raises(DataError, match=r"labels \['eleven'\] are not among the classes"):
        window_performance(y_true=["eleven"] + ["1"] * 149, **kwargs)


def test_corrupted_labels_alert() -> None:
    split = digits()
    reference = _reference(split, DIGITS)
    rows = _window(len(split.y), 300, 11)
    y = split.y[rows].copy()
    corrupt = np.random.default_rng(0).random(y.size) < 0.3
    y[corrupt] = (y[corrupt] + 1 + np.random.default_rng(1).integers(0, 9, corrupt.sum())) % 10
    result = window_performance(
        task="multiclass",
        classes=DIGITS,
        y_true=y,
        probabilities=split.out[rows],
        reference=reference,
        spec=PerformanceSpec(),
    )
    assert result.alert
    assert result.drop is not None and result.drop > 0.2
    assert result.high is not None and result.high < reference["accuracy"]
    assert result.reason is not None and "below the reference" in result.reason


def test_a_small_bad_window_does_not_alert_by_chance() -> None:
    """30 rows at 87 % against a reference of 94 %: past max_drop, but within noise."""
    split = digits()
    reference = _reference(split, DIGITS)
    right = np.flatnonzero(split.out.argmax(axis=1) == split.y)
    wrong = np.flatnonzero(split.out.argmax(axis=1) != split.y)
    rows = np.r_[right[:26], wrong[:4]]
    kwargs = {"task": "multiclass", "classes": DIGITS, "reference": reference}
    small = window_performance(
        y_true=split.y[rows], probabilities=split.out[rows], spec=PerformanceSpec(), **kwargs
    )
    assert small.value == pytest.approx(26 / 30)
    assert small.drop is not None and small.drop > 0.05
    assert not small.alert
    assert small.reason is not None and "not significant" in small.reason
    # Without an interval (bootstrap: 0) the drop alone decides.
    blunt = window_performance(
        y_true=split.y[rows],
        probabilities=split.out[rows],
        spec=PerformanceSpec(bootstrap=0),
        **kwargs,
    )
    assert blunt.alert and blunt.low is None
    # Fewer labels than min_labels: values, but no verdict.
    tiny = window_performance(
        y_true=split.y[rows[:10]],
        probabilities=split.out[rows[:10]],
        spec=PerformanceSpec(),
        **kwargs,
    )
    assert not tiny.alert and tiny.value is not None and tiny.low is None
    assert tiny.reason == "only 10 labelled rows, fewer than min_labels=30: no verdict"
    none = window_performance(
        y_true=np.array([], dtype=int),
        probabilities=np.empty((0, 10)),
        spec=PerformanceSpec(),
        **kwargs,
    )
    assert none.n == 0 and none.value is None and not none.alert


def test_regression_rmse_alerts_upwards_only() -> None:
    split = diabetes()
    reference = regression_metrics(split.ref_y, split.ref_out)
    spec = PerformanceSpec()
    kwargs = {"task": "regression", "classes": None, "reference": reference, "spec": spec}
    healthy = window_performance(y_true=split.y, values=split.out, **kwargs)
    assert healthy.metric == "rmse" and not healthy.higher_is_better
    assert not healthy.alert, healthy.reason
    assert healthy.value == pytest.approx(regression_metrics(split.y, split.out)["rmse"])
    noisy = split.out + np.random.default_rng(0).normal(0, 60, split.out.size)
    worse = window_performance(y_true=split.y, values=noisy, **kwargs)
    assert worse.alert and worse.drop is not None and worse.drop > 0.2
    assert worse.low is not None and worse.low > reference["rmse"]
    assert worse.reason is not None and "above the reference" in worse.reason
    # Far better than the reference (predictions pulled towards the truth): no alert.
    better = window_performance(y_true=split.y, values=(split.out + split.y) / 2, **kwargs)
    assert better.drop is not None and better.drop < -0.3 and not better.alert
    # The feedback's numbers arrive as strings.
    as_text = window_performance(y_true=split.y.astype(str), values=split.out, **kwargs)
    assert as_text.value == pytest.approx(healthy.value)


def test_other_metrics_and_bad_arguments() -> None:
    split = cancer()
    reference = _reference(split, CANCER)
    kwargs = {
        "task": "binary",
        "classes": CANCER,
        "y_true": split.y,
        "probabilities": split.out,
        "reference": reference,
    }
    loss = window_performance(spec=PerformanceSpec(metric="log_loss", bootstrap=100), **kwargs)
    assert not loss.higher_is_better and loss.low is not None and loss.high is not None
    assert loss.value == pytest.approx(
        classification_metrics(split.y, split.out, CANCER)["log_loss"]
    )
    assert loss.low <= loss.value <= loss.high
    assert set(loss.metrics) == {"accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss"}
    with pytest.raises(
        SpecError,
        match=r"monitor\.performance\.metric: 'rmse' is not a classification metric; "
        r"expected one of accuracy, balanced_accuracy, precision_macro, recall_macro, f1_macro, "
        r"roc_auc, pr_auc, log_loss, ece$",
    ):
        window_performance(spec=PerformanceSpec(metric="rmse"), **kwargs)
    with pytest.raises(DataError, match="reference: has no 'roc_auc'"):
        window_performance(spec=PerformanceSpec(metric="roc_auc"), **{**kwargs, "reference": {}})
    with pytest.raises(DataError, match="probabilities: a classifier's window needs"):
        window_performance(spec=PerformanceSpec(), **{**kwargs, "probabilities": None})


def test_window_takes_the_log_columns_as_they_come() -> None:
    split = cancer()
    probabilities = pa.chunked_array(
        [
            pa.FixedSizeListArray.from_arrays(pa.array(split.out[:50].ravel()), 2),
            pa.FixedSizeListArray.from_arrays(pa.array(split.out[50:].ravel()), 2),
        ]
    )
    actual = pa.chunked_array([np.array(CANCER)[split.y].tolist()])
    spec = PerformanceSpec()
    reference = _reference(split, CANCER)
    from_log = window_performance(
        task="binary",
        classes=CANCER,
        y_true=actual,
        probabilities=probabilities,
        reference=reference,
        spec=spec,
    )
    from_numpy = window_performance(
        task="binary",
        classes=CANCER,
        y_true=split.y,
        probabilities=split.out,
        reference=reference,
        spec=spec,
    )
    assert from_log == from_numpy
    assert isinstance(from_log, PerformanceResult)


# --- CBPE -------------------------------------------------------------------------------


def test_cbpe_calibration_is_isotonic_per_class() -> None:
    split = cancer()
    cbpe = CBPE.fit(split.ref_out, split.ref_y, CANCER)
    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(
        split.ref_out[:, 1], split.ref_y == 1
    )
    q = cbpe.calibrate(split.out)
    np.testing.assert_allclose(q[:, 1], iso.predict(split.out[:, 1]), atol=1e-12)
    np.testing.assert_allclose(q.sum(axis=1), 1.0)

    wine = load_wine()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05))
    model.fit(wine.data[::2], wine.target[::2])
    p = model.predict_proba(wine.data[1::2])
    names = list(wine.target_names)
    multi = CBPE.fit(p, wine.target[1::2], names)
    raw = np.stack(
        [
            IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip")
            .fit(p[:, c], wine.target[1::2] == c)
            .predict(p[:, c])
            for c in range(3)
        ],
        axis=1,
    )
    np.testing.assert_allclose(multi.calibrate(p), raw / raw.sum(axis=1, keepdims=True))
    assert len(multi.calibrators) == 3 and len(cbpe.calibrators) == 1


def test_cbpe_tracks_realised_performance_on_iid_windows() -> None:
    split = digits()
    cbpe = CBPE.fit(split.ref_out, split.ref_y, DIGITS)
    errors, covered = [], 0
    for seed in range(10):
        rows = _window(len(split.y), 200, seed)
        estimate = cbpe.estimate(split.out[rows], seed=seed)
        realised = classification_metrics(split.y[rows], split.out[rows], DIGITS)
        accuracy = estimate["accuracy"]
        assert accuracy.low is not None and accuracy.high is not None
        errors.append(accuracy.value - realised["accuracy"])
        covered += accuracy.low <= realised["accuracy"] <= accuracy.high
        for name in ("balanced_accuracy", "f1_macro"):
            assert estimate[name].value == pytest.approx(realised[name], abs=0.04)
        assert estimate["roc_auc"].value == pytest.approx(realised["roc_auc"], abs=0.01)
    # Measured: mean |error| 0.012, max 0.023, realised inside the interval 10/10.
    assert np.mean(np.abs(errors)) < 0.02
    assert np.max(np.abs(errors)) < 0.03
    assert covered >= 8


def test_cbpe_binary_estimates_accuracy_and_roc_auc() -> None:
    split = cancer()
    cbpe = CBPE.fit(split.ref_out, split.ref_y, CANCER)
    for seed in range(5):
        rows = _window(len(split.y), 100, seed)
        estimate = cbpe.estimate(split.out[rows], seed=seed)
        realised = classification_metrics(split.y[rows], split.out[rows], CANCER)
        assert estimate["accuracy"].value == pytest.approx(realised["accuracy"], abs=0.04)
        assert estimate["roc_auc"].value == pytest.approx(realised["roc_auc"], abs=0.015)


def test_cbpe_follows_a_covariate_shift_to_harder_rows() -> None:
    """Windows enriched with the rows the model is least sure of: harder, same P(y|x)."""
    split = digits()
    cbpe = CBPE.fit(split.ref_out, split.ref_y, DIGITS)
    by_confidence = np.argsort(split.out.max(axis=1))
    hard, easy = by_confidence[:250], by_confidence[250:]
    estimated, realised = [], []
    for share in (0.0, 0.5, 1.0):
        rng = np.random.default_rng(1)
        n_hard = int(200 * share)
        rows = np.r_[
            rng.choice(hard, n_hard, replace=False), rng.choice(easy, 200 - n_hard, replace=False)
        ]
        estimated.append(cbpe.estimate(split.out[rows], n_boot=0)["accuracy"].value)
        realised.append(classification_metrics(split.y[rows], split.out[rows], DIGITS)["accuracy"])
    # Measured: estimated 0.997 / 0.926 / 0.869 against realised 1.000 / 0.945 / 0.900.
    assert realised[2] <= realised[0] - 0.08  # the shift really hurts
    assert estimated[2] < estimated[1] < estimated[0]
    np.testing.assert_allclose(estimated, realised, atol=0.05)


def test_cbpe_cannot_see_a_concept_shift() -> None:
    """Its known limit: labels whose meaning changed leave the probabilities, and the estimate, unchanged."""
    split = digits()
    cbpe = CBPE.fit(split.ref_out, split.ref_y, DIGITS)
    rows = _window(len(split.y), 300, 3)
    y = split.y[rows].copy()
    changed = np.random.default_rng(0).random(y.size) < 0.5
    y[changed] = (y[changed] + 1) % 10  # half the rows now mean the next digit
    estimate = cbpe.estimate(split.out[rows])["accuracy"]
    realised = classification_metrics(y, split.out[rows], DIGITS)["accuracy"]
    assert estimate.value is not None and estimate.low is not None
    assert estimate.value > 0.9 and realised < 0.55
    assert realised < estimate.low  # which is why realised performance is shown beside it
    assert any("concept shift" in line for line in CBPE.ASSUMPTIONS)


def test_cbpe_options_and_bad_inputs() -> None:
    split = cancer()
    none = CBPE.fit(split.ref_out, split.ref_y, CANCER, calibration="none")
    assert none.calibrators == [None]
    np.testing.assert_allclose(none.calibrate(split.out), split.out)
    auto = CBPE.fit(split.ref_out, split.ref_y, CANCER, calibration="auto")
    assert len(auto.calibrators) == 1
    estimate = none.estimate(split.out, n_boot=0)
    assert estimate["accuracy"] == Estimate(
        pytest.approx(np.mean(split.out.max(axis=1))), None, None
    )
    # A binary model deciding at its own threshold: the estimate is of that decision.
    strict = CBPE.fit(split.ref_out, split.ref_y, CANCER, threshold=0.9, calibration="none")
    decided = (split.out[:, 1] >= 0.9).astype(int)
    right = np.where(decided == 1, split.out[:, 1], split.out[:, 0])
    assert strict.estimate(split.out, n_boot=0)["accuracy"].value == pytest.approx(right.mean())
    assert CBPE.from_dict(json.loads(json.dumps(strict.to_dict()))).threshold == 0.9
    with pytest.raises(SpecError, match=r"threshold: 0\.5 needs 2 classes"):
        CBPE(DIGITS, [None] * 10, threshold=0.5)
    with pytest.raises(SpecError, match="calibration: 'platt' is not one of"):
        CBPE.fit(split.ref_out, split.ref_y, CANCER, calibration="platt")  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"probabilities: expected shape \(n, 2\)"):
        none.estimate(split.out[:, :1])
    with pytest.raises(DataError, match="do not sum to 1"):
        none.estimate(split.out * 0.5)
    with pytest.raises(DataError, match="no rows"):
        none.estimate(np.empty((0, 2)))


# --- CBPE documents ---------------------------------------------------------------------


def test_cbpe_round_trips_through_json() -> None:
    for split, classes in ((digits(), DIGITS), (cancer(), CANCER)):
        cbpe = CBPE.fit(split.ref_out, split.ref_y, classes)
        doc = json.loads(json.dumps(cbpe.to_dict()))
        assert doc["format"] == "mlcycle-cbpe/1" and doc["classes"] == classes
        assert doc["assumptions"] == list(CBPE.ASSUMPTIONS)
        again = CBPE.from_dict(doc)
        np.testing.assert_array_equal(again.calibrate(split.out), cbpe.calibrate(split.out))
        assert again.estimate(split.out[:100]) == cbpe.estimate(split.out[:100])
        assert again.reference == cbpe.reference and again.n_reference == len(split.ref_y)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "mlcycle-cbpe/2"}, "cbpe.format: 'mlcycle-cbpe/2', expected 'mlcycle-cbpe/1'"),
        ({"classes": "ab"}, "cbpe.classes: expected a list of names"),
        ({"classes": ["a", "b", "c"]}, "cbpe: calibrators: expected 3 for 3 classes, got 1"),
        ({"calibrators": {}}, "cbpe.calibrators: expected a list"),
        (
            {"calibrators": [{"x": [0.0, 1.0]}]},
            r"cbpe.calibrators\[0\]: expected null or an object",
        ),
        (
            {"calibrators": [{"x": [0.5, 0.2], "y": [0.0, 1.0]}]},
            r"cbpe.calibrators\[0\]: isotonic breakpoints must be non-decreasing",
        ),
        ({"calibrators": [{"x": [0.0, 1.0], "y": [0.0, 1.5]}]}, r"y must lie in \[0, 1\]"),
        ({"calibrators": [{"x": ["a"], "y": [0.1]}]}, "x and y must be lists of numbers"),
        ({"calibrators": [{"x": [0.0, 1.0], "y": [0.1]}]}, "non-empty lists of the same length"),
        ({"threshold": "high"}, "cbpe.threshold: expected a number or null"),
        ({"reference": {"accuracy": "good"}}, "cbpe.reference: expected metric -> number"),
        ({"n_reference": -1}, "cbpe.n_reference: expected a count"),
    ],
)
def test_bad_cbpe_documents_are_refused_clearly(change: dict, message: str) -> None:
    doc = CBPE.fit(cancer().ref_out, cancer().ref_y, CANCER).to_dict() | change
    with pytest.raises(DataError, match=message):
        CBPE.from_dict(doc)


def test_a_cbpe_document_that_is_not_an_object() -> None:
    with pytest.raises(DataError, match="cbpe: expected a JSON object, got list"):
        CBPE.from_dict([])  # type: ignore[arg-type]


def test_cbpe_point_estimates_are_the_expected_confusion_matrix() -> None:
    """Brute force on wine's probabilities: each metric from the expected counts, pair by pair for AUC."""
    wine = load_wine()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.02))
    model.fit(wine.data[::2], wine.target[::2])
    p = np.round(model.predict_proba(wine.data[1::2]), 2)  # rounded: ties in the ranking
    p /= p.sum(axis=1, keepdims=True)
    cbpe = CBPE.fit(p, wine.target[1::2], list(wine.target_names), calibration="none")
    estimate = cbpe.estimate(p, n_boot=0)
    pred = p.argmax(axis=1)
    cm = np.array([[p[pred == k, j].sum() for k in range(3)] for j in range(3)])
    recall = np.diag(cm) / cm.sum(axis=1)
    f1 = 2 * np.diag(cm) / (cm.sum(axis=1) + cm.sum(axis=0))
    aucs = []
    for c in range(3):
        s, q = p[:, c], p[:, c]
        wins = pairs = 0.0
        for i in range(len(s)):
            for j in range(len(s)):
                if i != j:
                    weight = q[i] * (1 - q[j])
                    pairs += weight
                    wins += weight * ((s[i] > s[j]) + 0.5 * (s[i] == s[j]))
        aucs.append(wins / pairs)
    assert estimate["accuracy"].value == pytest.approx(np.mean(p[np.arange(len(p)), pred]))
    assert estimate["balanced_accuracy"].value == pytest.approx(recall.mean())
    assert estimate["f1_macro"].value == pytest.approx(f1.mean())
    assert estimate["roc_auc"].value == pytest.approx(np.mean(aucs))
