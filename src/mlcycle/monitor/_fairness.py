"""Bias over time: per-group rates and the fairness differences of a window, with alerts.

For each sensitive column in ``spec.monitor.fairness`` the predictions (and,
where they have come, the labels) are split by group, and Fairlearn computes
the selection rate, true- and false-positive rates and accuracy per group, the
demographic-parity difference and the equalised-odds difference. Labels are
class names; the positive class is ``positive_label`` and every other class
counts as negative (one-vs-rest for a multiclass model), except in accuracy,
which compares the class names themselves. With several sensitive columns,
each is reported on its own and, unless ``intersections`` is off, so is their
intersection under the key ``sex×race``: one group per combination of values
(``female×black``), as Fairlearn's ``MetricFrame`` groups several sensitive
features.

A rate estimated from a handful of rows is noise, so a group takes part in a
difference only when enough rows stand behind its rates: ``min_group_rows``
rows for the demographic-parity difference, and as many positive *and*
negative labels for the equalised-odds difference (the true-positive rate is
estimated from the positives alone). Smaller groups are still reported; the
result lists them in ``excluded`` and says why in ``notes``, so a window with
three rows of a group cannot raise an alert. Rows without a label (labels come
late) count in the selection rate only. Missing sensitive values form the group
``"(missing)"``.

Every difference comes with a percentile bootstrap interval at ``confidence``
(``bootstrap`` resamples of the rows within each group, and within each
label for the equalised odds; seeded by ``seed``, so a report is reproducible).
By default a difference alerts only relative to the reference (the model's
answers on its validation split, recorded at registration, reported the same
way): when it is above the reference's difference by more than ``margin`` and
so is the lower end of its interval. A model that was already unequal on clean
data is thus judged against itself, and a small group's noise cannot alert.
``max_difference``, when set, adds an absolute limit on the difference itself
(the point estimate: a limit the user chose). Each result says, per
difference, its interval, the rule that decided and why (``checks``).
Fairlearn is imported on first use, as importing it takes about a second.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from mlcycle.errors import DataError, SpecError

if TYPE_CHECKING:
    from mlcycle.spec import FairnessSpec

__all__ = [
    "INTERSECTION",
    "MISSING_GROUP",
    "DifferenceCheck",
    "FairnessResult",
    "FairnessWindow",
    "GroupMetrics",
    "fairness_report",
    "fairness_timeline",
]

MISSING_GROUP = "(missing)"
INTERSECTION = "×"

Strings = NDArray[np.object_]


@dataclass(frozen=True)
class GroupMetrics:
    """One group's rates; None where undefined (no labels, or no positive / negative label).

    ``rows`` counts every prediction of the group, ``labelled`` those with a label.
    """

    group: str
    rows: int
    selection_rate: float
    tpr: float | None
    fpr: float | None
    accuracy: float | None
    labelled: int = 0


@dataclass(frozen=True)
class DifferenceCheck:
    """How one fairness difference of a window was judged, with its interval.

    Attributes:
        low, high: The percentile bootstrap interval of the difference at ``confidence``.
        confidence: The interval's level (``monitor.fairness.confidence``).
        reference: The same difference on the reference rows, with its interval
            (``reference_low``, ``reference_high``); None without a reference.
        margin: How far above the reference the relative rule lets the difference go.
        limit: ``max_difference`` when it is set (the absolute rule), else None.
        rule: The rule that decided: with an alert, the one(s) that raised it; without,
            the ones applied (``"relative"``, ``"absolute"``, ``"relative and absolute"``,
            ``"none"`` when neither can apply).
        alert: Whether the difference alerts.
        reason: The verdict in one line, naming the rule and the figures compared.
    """

    low: float
    high: float
    confidence: float
    reference: float | None
    reference_low: float | None
    reference_high: float | None
    margin: float
    limit: float | None
    rule: str
    alert: bool
    reason: str


@dataclass(frozen=True)
class FairnessResult:
    """The fairness of one sensitive column over one window; :meth:`to_dict` is JSON-able.

    Attributes:
        column: The sensitive column.
        groups: Every group seen, sorted by name, small ones included.
        demographic_parity_difference: Largest minus smallest selection rate over the groups
            with at least ``min_group_rows`` rows; None when fewer than two qualify.
        equalized_odds_difference: The larger of the TPR and FPR ranges over the groups with
            at least ``min_group_rows`` positive and negative labels; None without labels or
            when fewer than two qualify.
        alerts: One line per difference that alerts, naming column, metric, value, interval,
            the rule and the groups with the highest and lowest rate.
        excluded: Groups left out of at least one difference for want of rows or labels.
        notes: Why each excluded group was left out (with its size), and why a difference
            is None.
        checks: Per difference that could be computed (``"demographic_parity_difference"``,
            ``"equalized_odds_difference"``), its interval and verdict.
    """

    column: str
    groups: list[GroupMetrics]
    demographic_parity_difference: float | None
    equalized_odds_difference: float | None
    alerts: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checks: dict[str, DifferenceCheck] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts, lists, strings, numbers and None."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FairnessResult:
        """The inverse of :meth:`to_dict`, for a reference read back from the store."""
        fields = dict(data)
        fields["groups"] = [GroupMetrics(**group) for group in fields["groups"]]
        checks = fields.get("checks") or {}
        fields["checks"] = {name: DifferenceCheck(**check) for name, check in checks.items()}
        return cls(**fields)


class FairnessWindow(NamedTuple):
    """One window of :func:`fairness_timeline`: its bounds and a result per sensitive column."""

    start: np.datetime64
    end: np.datetime64
    results: dict[str, FairnessResult]


def fairness_report(
    y_pred: ArrayLike,
    sensitive: Mapping[str, ArrayLike],
    *,
    spec: FairnessSpec,
    y_true: ArrayLike | None = None,
    positive_label: str | None = None,
    reference: Mapping[str, FairnessResult] | None = None,
    classes: Sequence[str] | None = None,
) -> dict[str, FairnessResult]:
    """Per-group metrics, fairness differences and alerts for each sensitive column.

    Args:
        y_pred: Predicted class names, one per row.
        sensitive: The sensitive columns by name, each as long as ``y_pred``.
        spec: Which columns to watch (``spec.sensitive``; empty: every column of
            ``sensitive``) and the limits.
        y_true: Labels, where they have come; missing entries mark unlabelled rows.
        positive_label: The positive class; None takes ``spec.positive_label``.
        reference: Results on the reference data by column, for the margin test.
        classes: The model's classes, to validate ``positive_label`` against; None:
            it must occur among the predictions or the labels.

    Returns:
        A :class:`FairnessResult` per sensitive column, in ``spec.sensitive`` order, then
        one for their intersection (``"a×b"``) when there are several.

    Raises:
        DataError: a length mismatch, a missing sensitive column or prediction,
            or a positive label that is not a class.

    Example:
        >>> from mlcycle.spec import FairnessSpec
        >>> spec = FairnessSpec(sensitive=("group",), positive_label="yes")
        >>> group = {"group": ["a"] * 40 + ["b"] * 40}
        >>> before = ["yes"] * 18 + ["no"] * 22 + ["yes"] * 22 + ["no"] * 18
        >>> now = ["yes"] * 10 + ["no"] * 30 + ["yes"] * 30 + ["no"] * 10
        >>> reference = fairness_report(before, group, spec=spec)
        >>> result = fairness_report(now, group, spec=spec, reference=reference)["group"]
        >>> [(g.group, g.selection_rate) for g in result.groups]
        [('a', 0.25), ('b', 0.75)]
        >>> print(*result.alerts)  # doctest: +NORMALIZE_WHITESPACE
        group: demographic parity difference 0.500 (95% interval 0.324 to 0.700) is above
        the reference's 0.100 by more than the margin 0.05, and so is the whole interval
        (relative rule) (selection rate 0.750 for 'b', 0.250 for 'a')
    """
    positive = _positive_label(positive_label, spec)
    pred, truth = _labels(y_pred, y_true)
    _check_positive(positive, pred, truth, classes)
    columns = _groups(sensitive, spec, len(pred))
    return _report(pred, truth, columns, positive, spec, reference)


def fairness_timeline(
    times: ArrayLike,
    y_pred: ArrayLike,
    sensitive: Mapping[str, ArrayLike],
    *,
    windows: int,
    spec: FairnessSpec,
    y_true: ArrayLike | None = None,
    positive_label: str | None = None,
    reference: Mapping[str, FairnessResult] | None = None,
    classes: Sequence[str] | None = None,
    split: Literal["time", "rows"] = "time",
) -> list[FairnessWindow]:
    """:func:`fairness_report` over consecutive windows of the rows' timestamps.

    ``split="time"`` (the default) cuts the span from the first to the last
    timestamp into ``windows`` windows of equal *duration*, ``[start, end)``
    with the last one closed, so the series reads against a clock; a quiet
    window simply has fewer rows, and groups too small in it are reported but
    not compared, so sparse traffic cannot raise an alert. ``split="rows"``
    cuts the rows, in time order, into windows of equal *count* (within one
    row), each ``[start, end]`` from its first to its last timestamp (NaT for a
    window left empty because there are fewer rows than windows). Inputs
    are validated once, on all rows.

    Args:
        times: A ``datetime64`` timestamp per row (tz-aware values are taken in UTC).
        windows: How many windows.
        split: Equal-duration (``"time"``) or equal-count (``"rows"``) windows.
        y_pred, sensitive, spec, y_true, positive_label, reference, classes: As
            for :func:`fairness_report`.

    Returns:
        One :class:`FairnessWindow` ``(start, end, results)`` per window, in time order.

    Example:
        >>> from mlcycle.spec import FairnessSpec
        >>> spec = FairnessSpec(sensitive=("g",), positive_label="yes", min_group_rows=2)
        >>> times = np.arange(8).astype("datetime64[h]")
        >>> predictions = ["yes", "no", "yes", "no", "yes", "yes", "no", "no"]
        >>> groups = {"g": ["a", "a", "b", "b"] * 2}
        >>> timeline = fairness_timeline(times, predictions, groups, windows=2, spec=spec)
        >>> [(str(w.start)[:16], w.results["g"].demographic_parity_difference) for w in timeline]
        [('1970-01-01T00:00', 0.0), ('1970-01-01T03:30', 1.0)]
    """
    if windows < 1:
        raise SpecError(f"fairness timeline: windows must be at least 1, got {windows}")
    if split not in ("time", "rows"):
        raise SpecError(f"fairness timeline: split {split!r} is not 'time' or 'rows'")
    positive = _positive_label(positive_label, spec)
    pred, truth = _labels(y_pred, y_true)
    _check_positive(positive, pred, truth, classes)
    columns = _groups(sensitive, spec, len(pred))
    stamps = _times(times, len(pred))
    if len(stamps) == 0:
        raise DataError("fairness timeline: there are no rows to cut into windows")

    timeline = []
    for start, end, rows in _windows(stamps, windows, split):
        results = _report(
            pred[rows],
            None if truth is None else truth[rows],
            {column: groups[rows] for column, groups in columns.items()},
            positive,
            spec,
            reference,
        )
        timeline.append(FairnessWindow(start, end, results))
    return timeline


def _positive_label(positive_label: str | None, spec: FairnessSpec) -> str:
    positive = spec.positive_label if positive_label is None else positive_label
    if positive is None:
        raise DataError(
            "fairness: no positive label; set monitor.fairness.positive_label in mlcycle.yaml"
        )
    return positive


def _strings(values: pd.Series[Any]) -> Strings:
    """Class names or group values as Python strings (``1`` and ``"1"`` are one class)."""
    return np.asarray(values.astype(str), dtype=object)


def _labels(y_pred: ArrayLike, y_true: ArrayLike | None) -> tuple[Strings, Strings | None]:
    """Predictions and labels as strings; an unlabelled row's label is None."""
    pred = pd.Series(np.asarray(y_pred, dtype=object))
    missing = pred.isna().to_numpy()
    if missing.any():
        rows = ", ".join(str(i) for i in np.flatnonzero(missing)[:3])
        raise DataError(
            f"fairness: {int(missing.sum())} predictions are missing (rows {rows}); "
            "expected a class name in every row"
        )
    if y_true is None:
        return _strings(pred), None
    truth = pd.Series(np.asarray(y_true, dtype=object))
    if len(truth) != len(pred):
        raise DataError(
            f"fairness: the labels have {len(truth)} rows, the predictions {len(pred)}; "
            "expected one label (or a missing value) per prediction"
        )
    unlabelled = truth.isna().to_numpy()
    labels = _strings(truth)
    labels[unlabelled] = None
    return _strings(pred), labels


def _check_positive(
    positive: str, pred: Strings, truth: Strings | None, classes: Sequence[str] | None
) -> None:
    if classes is not None:
        known = {str(c) for c in classes}
        where = "the model's classes"
    else:
        known = set(pred.tolist())
        if truth is not None:
            known.update(label for label in truth.tolist() if label is not None)
        where = "the predictions and labels"
    if positive not in known:
        shown = ", ".join(repr(c) for c in sorted(known)) or "nothing"
        raise DataError(
            f"fairness: positive label {positive!r} is not among {where} ({shown}); "
            "expected one of them in monitor.fairness.positive_label"
        )


def _groups(
    sensitive: Mapping[str, ArrayLike], spec: FairnessSpec, rows: int
) -> dict[str, Strings]:
    """Each watched column's group per row, as strings, with missing values in MISSING_GROUP."""
    names = spec.sensitive or tuple(sensitive)
    columns = {}
    for name in names:
        if name not in sensitive:
            have = ", ".join(repr(c) for c in sensitive) or "none"
            raise DataError(f"fairness: sensitive column {name!r} is missing; the data has {have}")
        values = pd.Series(np.asarray(sensitive[name], dtype=object))
        if len(values) != rows:
            raise DataError(
                f"fairness: sensitive column {name!r} has {len(values)} rows, "
                f"the predictions {rows}; expected one value per prediction"
            )
        groups = _strings(values)
        groups[values.isna().to_numpy()] = MISSING_GROUP
        columns[name] = groups
    if spec.intersections and len(columns) >= 2:
        key = INTERSECTION.join(columns)
        if key in columns:
            raise DataError(
                f"fairness: sensitive column {key!r} has the name of the intersection of "
                f"{', '.join(repr(c) for c in columns if c != key)}; expected another name"
            )
        # Fairlearn's MetricFrame with several sensitive features groups by their combination.
        first, *rest = columns.values()
        joined = first
        for groups in rest:
            joined = joined + INTERSECTION + groups
        columns[key] = joined
    return columns


def _times(times: ArrayLike, rows: int) -> NDArray[np.int64]:
    """Timestamps as int64 nanoseconds since the epoch."""
    values = pd.Series(times)
    if values.dtype.kind in "iufb":
        raise DataError(
            f"fairness timeline: the times are {values.dtype} numbers; expected timestamps"
        )
    try:
        stamps = pd.to_datetime(values)
    except (TypeError, ValueError) as exc:
        raise DataError(f"fairness timeline: the times are not timestamps ({exc})") from exc
    if len(stamps) != rows:
        raise DataError(
            f"fairness timeline: there are {len(stamps)} times and {rows} predictions; "
            "expected one time per prediction"
        )
    if stamps.isna().any():
        missing = np.flatnonzero(stamps.isna().to_numpy())
        rows_shown = ", ".join(str(i) for i in missing[:3])
        raise DataError(f"fairness timeline: {len(missing)} times are missing (rows {rows_shown})")
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return np.asarray(stamps.to_numpy("datetime64[ns]").astype(np.int64))


def _windows(
    stamps: NDArray[np.int64], windows: int, split: str
) -> list[tuple[np.datetime64, np.datetime64, NDArray[np.intp]]]:
    """``(start, end, row indices)`` per window."""
    ns = "datetime64[ns]"
    if split == "rows":
        nat = np.datetime64("NaT", "ns")
        chunks = np.array_split(np.argsort(stamps, kind="stable"), windows)
        return [
            (stamps[c].min().astype(ns), stamps[c].max().astype(ns), np.sort(c))
            if len(c)
            else (nat, nat, c)
            for c in chunks
        ]
    first, last = int(stamps.min()), int(stamps.max())
    # Integer edges: a float64 holds nanoseconds since 1970 exactly only for the first 104 days.
    edges = np.array([first + (last - first) * i // windows for i in range(windows + 1)])
    index = np.searchsorted(edges[1:-1], stamps, side="right")
    return [
        (edges[i].astype(ns), edges[i + 1].astype(ns), np.flatnonzero(index == i))
        for i in range(windows)
    ]


def _report(
    pred: Strings,
    truth: Strings | None,
    columns: Mapping[str, Strings],
    positive: str,
    spec: FairnessSpec,
    reference: Mapping[str, FairnessResult] | None,
) -> dict[str, FairnessResult]:
    return {
        column: _column(
            column,
            groups,
            pred,
            truth,
            positive,
            spec,
            None if reference is None else reference.get(column),
        )
        for column, groups in columns.items()
    }


def _column(
    column: str,
    groups: Strings,
    pred: Strings,
    truth: Strings | None,
    positive: str,
    spec: FairnessSpec,
    reference: FairnessResult | None,
) -> FairnessResult:
    from fairlearn.metrics import (  # type: ignore[import-untyped]
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    if len(pred) == 0:
        return FairnessResult(column, [], None, None, notes=["no rows in this window"])
    minimum = spec.min_group_rows
    selected = (pred == positive).astype(np.int8)
    by_group = pd.Series(groups, name=column)
    names = sorted(set(groups.tolist()))
    counts = by_group.value_counts()
    rates = MetricFrame(
        metrics=selection_rate, y_true=selected, y_pred=selected, sensitive_features=by_group
    ).by_group

    labelled = np.zeros(len(pred), dtype=bool) if truth is None else pd.notna(truth)
    tpr: Mapping[str, float] = {}
    fpr: Mapping[str, float] = {}
    accuracy: Mapping[str, float] = {}
    positives: Mapping[str, int] = {}
    negatives: Mapping[str, int] = {}
    if truth is not None and labelled.any():
        actual = (truth[labelled] == positive).astype(np.int8)
        labelled_groups = pd.Series(groups[labelled], name=column)
        frame = MetricFrame(
            metrics={
                "tpr": lambda t, p: true_positive_rate(t, p, pos_label=1),
                "fpr": lambda t, p: false_positive_rate(t, p, pos_label=1),
            },
            y_true=actual,
            y_pred=selected[labelled],
            sensitive_features=labelled_groups,
        ).by_group
        tpr, fpr = frame["tpr"].to_dict(), frame["fpr"].to_dict()
        accuracy = MetricFrame(
            metrics=accuracy_score,
            y_true=truth[labelled].astype(str),
            y_pred=pred[labelled].astype(str),
            sensitive_features=labelled_groups,
        ).by_group.to_dict()
        positives = labelled_groups[actual == 1].value_counts().to_dict()
        negatives = labelled_groups[actual == 0].value_counts().to_dict()

    metrics = []
    for name in names:
        n_pos, n_neg = int(positives.get(name, 0)), int(negatives.get(name, 0))
        metrics.append(
            GroupMetrics(
                group=name,
                rows=int(counts[name]),
                selection_rate=float(rates[name]),
                # Fairlearn answers 0 where the rate has no denominator; that is "undefined".
                tpr=float(tpr[name]) if n_pos else None,
                fpr=float(fpr[name]) if n_neg else None,
                accuracy=float(accuracy[name]) if n_pos + n_neg else None,
                labelled=n_pos + n_neg,
            )
        )

    notes: list[str] = []
    excluded: set[str] = set()
    parity_groups = [g for g in metrics if g.rows >= minimum]
    for g in metrics:
        if g.rows < minimum:
            excluded.add(g.group)
            notes.append(
                f"group {g.group!r} has {g.rows} rows (fewer than {minimum}): "
                "reported, left out of both differences"
            )
    parity: float | None = None
    if len(parity_groups) >= 2:
        keep = np.isin(groups, [g.group for g in parity_groups])
        parity = float(
            demographic_parity_difference(
                selected[keep], selected[keep], sensitive_features=groups[keep]
            )
        )
    else:
        notes.append(f"demographic parity difference: fewer than two groups have {minimum} rows")

    odds: float | None = None
    odds_groups: list[GroupMetrics] = []
    if truth is None or not labelled.any():
        notes.append("equalised odds difference: no labels in this window")
    else:
        for g in parity_groups:
            n_pos, n_neg = int(positives.get(g.group, 0)), int(negatives.get(g.group, 0))
            if n_pos >= minimum and n_neg >= minimum:
                odds_groups.append(g)
            else:
                excluded.add(g.group)
                notes.append(
                    f"group {g.group!r} has {n_pos} positive and {n_neg} negative labels "
                    f"(fewer than {minimum} of either): left out of the equalised odds difference"
                )
        if len(odds_groups) >= 2:
            keep = labelled & np.isin(groups, [g.group for g in odds_groups])
            odds = float(
                equalized_odds_difference(
                    (truth[keep] == positive).astype(np.int8),
                    selected[keep],
                    sensitive_features=groups[keep],
                )
            )
        else:
            notes.append(
                f"equalised odds difference: fewer than two groups have {minimum} "
                "positive and negative labels"
            )

    # Each column draws from its own seeded stream, whatever the order of the columns.
    seed = (spec.seed, zlib.crc32(column.encode()))
    judged: list[tuple[str, float, NDArray[np.float64], str]] = []
    if parity is not None:
        draws = _parity_draws(groups, selected, parity_groups, spec.bootstrap, seed)
        spread = _spread(parity_groups, "selection rate")
        judged.append(("demographic_parity_difference", parity, draws, spread))
    if odds is not None and truth is not None:
        actual = truth[labelled] == positive
        draws = _odds_draws(
            groups[labelled], selected[labelled], actual, odds_groups, spec.bootstrap, seed
        )
        judged.append(("equalized_odds_difference", odds, draws, _odds_spread(odds_groups)))
    checks: dict[str, DifferenceCheck] = {}
    alerts: list[str] = []
    for name, value, draws, spread in judged:
        check = checks[name] = _judge(value, draws, spec, reference, name)
        if check.alert:
            interval = f"{check.confidence:.0%} interval {check.low:.3f} to {check.high:.3f}"
            alerts.append(
                f"{column}: {_METRICS[name]} {value:.3f} ({interval}) {check.reason} ({spread})"
            )
    return FairnessResult(column, metrics, parity, odds, alerts, sorted(excluded), notes, checks)


_METRICS = {
    "demographic_parity_difference": "demographic parity difference",
    "equalized_odds_difference": "equalised odds difference",
}


def _ranges(rates: NDArray[np.float64]) -> NDArray[np.float64]:
    """Largest minus smallest rate of each bootstrap draw (a row per draw, a column per group)."""
    return np.asarray(rates.max(axis=1) - rates.min(axis=1), dtype=np.float64)


def _resampled_rates(
    hits: NDArray[np.int64], n: NDArray[np.int64], draws: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Each group's rate over ``draws`` resamples of its ``n`` rows, ``hits`` of them hits.

    Drawing ``n`` rows with replacement from a group and counting hits is drawing
    one binomial count, so this is the row bootstrap stratified by group, exactly,
    without materialising the rows.
    """
    counts = rng.binomial(n, hits / n, size=(draws, len(n)))
    return np.asarray(counts / n, dtype=np.float64)


def _parity_draws(
    groups: Strings,
    selected: NDArray[np.int8],
    kept: Sequence[GroupMetrics],
    draws: int,
    seed: tuple[int, int],
) -> NDArray[np.float64]:
    """Bootstrap demographic-parity differences: rows resampled within each group."""
    n = np.array([np.sum(groups == g.group) for g in kept], dtype=np.int64)
    hits = np.array([np.sum(selected[groups == g.group]) for g in kept], dtype=np.int64)
    return _ranges(_resampled_rates(hits, n, draws, np.random.default_rng(seed)))


def _odds_draws(
    groups: Strings,
    selected: NDArray[np.int8],
    actual: NDArray[np.bool_],
    kept: Sequence[GroupMetrics],
    draws: int,
    seed: tuple[int, int],
) -> NDArray[np.float64]:
    """Bootstrap equalised-odds differences: rows resampled within each group and label."""
    rng = np.random.default_rng(seed)
    ranges = []
    for label in (True, False):  # the true-positive rates, then the false-positive rates
        mine = [(groups == g.group) & (actual == label) for g in kept]
        n = np.array([np.sum(m) for m in mine], dtype=np.int64)
        hits = np.array([np.sum(selected[m]) for m in mine], dtype=np.int64)
        ranges.append(_ranges(_resampled_rates(hits, n, draws, rng)))
    return np.maximum(*ranges)


def _judge(
    value: float,
    draws: NDArray[np.float64],
    spec: FairnessSpec,
    reference: FairnessResult | None,
    name: str,
) -> DifferenceCheck:
    """The interval of ``value`` from its bootstrap ``draws``, and the verdict of the rules."""
    tail = (1 - spec.confidence) / 2
    low, high = (float(q) for q in np.quantile(draws, [tail, 1 - tail]))
    ref_value = None if reference is None else getattr(reference, name)
    ref_check = None if reference is None else reference.checks.get(name)
    verdicts: list[tuple[str, bool, str]] = []  # (rule, fired, why)
    if ref_value is not None:
        threshold = ref_value + spec.margin
        against = f"the reference's {ref_value:.3f} by more than the margin {spec.margin:g}"
        if value > threshold and low > threshold:
            why = f"is above {against}, and so is the whole interval"
        elif value > threshold:
            why = f"is above {against}, but its interval reaches down to {low:.3f}"
        else:
            why = f"is not above {against}"
        verdicts.append(("relative", value > threshold and low > threshold, why))
    if spec.max_difference is not None:
        over = value > spec.max_difference
        limit = f"the limit {spec.max_difference:g}"
        verdicts.append(("absolute", over, f"is above {limit}" if over else f"is within {limit}"))
    alert = any(fired for _, fired, _ in verdicts)
    missing = (
        "there is no reference"
        if reference is None
        else "the reference has none (too few groups with enough rows or labels)"
    )
    deciding = [(rule, why) for rule, fired, why in verdicts if fired or not alert]
    return DifferenceCheck(
        low=low,
        high=high,
        confidence=spec.confidence,
        reference=ref_value,
        reference_low=None if ref_check is None else ref_check.low,
        reference_high=None if ref_check is None else ref_check.high,
        margin=spec.margin,
        limit=spec.max_difference,
        rule=" and ".join(rule for rule, _ in deciding) or "none",
        alert=alert,
        reason="; ".join(f"{why} ({rule} rule)" for rule, why in deciding)
        or f"is not judged: {missing} and no max_difference is set",
    )


def _spread(groups: Sequence[GroupMetrics], rate: str) -> str:
    """Which groups hold the highest and lowest rate, for the alert's reader."""
    values = {
        "selection rate": {g.group: g.selection_rate for g in groups},
        "true positive rate": {g.group: g.tpr for g in groups if g.tpr is not None},
        "false positive rate": {g.group: g.fpr for g in groups if g.fpr is not None},
    }[rate]
    if len(values) < 2:
        return ""
    high = max(values, key=lambda g: values[g])
    low = min(values, key=lambda g: values[g])
    return f"{rate} {values[high]:.3f} for {high!r}, {values[low]:.3f} for {low!r}"


def _odds_spread(groups: Sequence[GroupMetrics]) -> str:
    """The spread of whichever rate, TPR or FPR, makes the equalised odds difference."""
    tprs = [g.tpr for g in groups if g.tpr is not None]
    fprs = [g.fpr for g in groups if g.fpr is not None]
    if len(tprs) < 2 or len(fprs) < 2:
        return ""
    tpr_range, fpr_range = max(tprs) - min(tprs), max(fprs) - min(fprs)
    rate = "true positive rate" if tpr_range >= fpr_range else "false positive rate"
    return _spread(groups, rate)
