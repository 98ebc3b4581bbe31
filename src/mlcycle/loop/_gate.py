"""The champion/challenger gate: may a retrained model replace the one serving?

Both models predict the same held-out rows, rows that neither trained on (the
caller picks them). The challenger wins when its main metric beats the
champion's by at least ``min_delta`` and, with ``require_ci``, the percentile
bootstrap interval of the *paired* difference lies above zero: every resample
scores both models on the same row indices, so the noise both share (hard
rows, easy rows) cancels and the interval measures the difference itself.
Guards bound how much a second figure may get worse (a fairness difference,
the latency of one request, any other evaluation metric), and a failed ONNX
parity check rejects outright. The verdict says why, with the numbers.

The metric, its direction and its units are the metric table's
(:data:`mlcycle.evaluate.METRICS`), and its bootstrap draws are evaluation's
(:func:`mlcycle.evaluate.draws`), by the formula of its point value. ``delta``
is signed so that a positive value always means the challenger is better: for
metrics where lower is better (``rmse``, ``mae``, ``mape``, ``log_loss``,
``ece``) it is champion minus challenger. A tie is not an improvement: the
challenger must beat the champion, by ``min_delta`` or more (for metrics in
the target's units, ``mae`` and ``rmse``, ``min_delta`` is relative to the
champion's value).

Only ONNX Runtime predictors are involved: this module never imports torch.

Example (in a project where ``cancer`` has two versions)::

    from mlcycle.loop import gate
    from mlcycle.spec import AuditLimitSpec, GateSpec
    verdict = gate(load("cancer@champion"), load("cancer@3"), holdout, target="target",
                   spec=GateSpec(guards={"f1_macro": 0.01}))
    verdict.promote, verdict.reasons
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from mlcycle._numbers import finite_json
from mlcycle.errors import DataError, SpecError
from mlcycle.evaluate import Metric, default_metric, draws, metric_names, point_metrics
from mlcycle.evaluate import metric as lookup

if TYPE_CHECKING:
    from mlcycle.evaluate._task import Family
    from mlcycle.registry import Predictor
    from mlcycle.spec import AuditLimitSpec, GateSpec

__all__ = ["GUARDS", "GateVerdict", "gate"]

FloatArray = npt.NDArray[np.float64]

FAIRNESS = ("demographic_parity_difference", "equalized_odds_difference")
LATENCY = "latency_ms"
GUARDS = (*FAIRNESS, LATENCY)
# One-row requests timed per model for the latency guard, alternating which
# model goes first so that noise on the machine hits both alike.
LATENCY_CALLS = 50
MISSING_GROUP = "(missing)"


@dataclass(frozen=True)
class GateVerdict:
    """The gate's decision and the figures behind it; :meth:`to_dict` is JSON-able.

    Attributes:
        promote: Whether the challenger may replace the champion.
        metric: The main metric compared.
        champion: The champion's ``metric`` on the holdout.
        challenger: The challenger's ``metric`` on the holdout.
        delta: The improvement, positive when the challenger is better (for
            lower-is-better metrics, champion minus challenger).
        low: Lower bound of the paired bootstrap interval of ``delta``.
        high: Upper bound of that interval.
        rows: Holdout rows both models were scored on.
        guards: Per guard: ``champion``, ``challenger``, ``worsening`` (positive:
            the challenger is worse), ``limit`` and ``ok``; fairness guards add
            the sensitive ``column`` that binds and ``by_column``.
        parity_ok: Whether the challenger's ONNX parity check passed.
        reasons: Why it was rejected (every reason), or why it was promoted.
        improved: Whether the gain reached ``min_delta`` (the point estimate;
            with ``promote`` False it may still lack significance: more
            held-out rows could decide).
        audit: Per audit limit (``spec.audit``): the challenger's ``values``
            (by facet, eps, ...), ``min``, ``max`` and ``ok``; empty without limits.
    """

    promote: bool
    metric: str
    champion: float
    challenger: float
    delta: float
    low: float
    high: float
    rows: int
    guards: dict[str, dict[str, Any]]
    parity_ok: bool
    reasons: list[str]
    improved: bool = False
    audit: dict[str, dict[str, Any]] = field(default_factory=dict)

    def with_audit(
        self, figures: Mapping[str, Mapping[str, float]], limits: Mapping[str, AuditLimitSpec]
    ) -> GateVerdict:
        """This verdict with the audit ``limits`` checked on the challenger's audit ``figures``.

        ``figures`` maps ``KIND.FIGURE`` to its values by label (a facet, an
        eps); every value must lie in its limit's range, and a figure the audit
        does not have fails, naming those it has.
        """
        checks: list[tuple[bool, str]] = []
        audit: dict[str, dict[str, Any]] = {}
        for key, limit in limits.items():
            values = figures.get(key)
            if values is None:
                known = ", ".join(sorted(figures)) or "none"
                audit[key] = {"values": {}, "min": limit.min, "max": limit.max, "ok": False}
                checks.append(
                    (False, f"audit: the challenger's audit has no {key} (it has: {known})")
                )
                continue
            outside = {
                label: value
                for label, value in values.items()
                if not math.isfinite(value)
                or (limit.min is not None and value < limit.min)
                or (limit.max is not None and value > limit.max)
            }
            bounds = _bounds(limit.min, limit.max)
            audit[key] = {"values": dict(values), "min": limit.min, "max": limit.max}
            audit[key]["ok"] = not outside
            if outside:
                worst = ", ".join(f"{label} {value:.4g}" for label, value in outside.items())
                checks.append((False, f"audit: {key} outside {bounds}: {worst}"))
            else:
                shown = ", ".join(f"{label} {value:.4g}" for label, value in values.items())
                checks.append((True, f"audit: {key} within {bounds} ({shown})"))
        promote = self.promote and all(ok for ok, _ in checks)
        if promote:
            reasons = [*self.reasons, *(text for _, text in checks)]
        else:
            kept = self.reasons if not self.promote else []
            reasons = [*kept, *(text for ok, text in checks if not ok)]
        return replace(self, promote=promote, reasons=reasons, audit=audit)

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts, lists, strings, numbers and None (for NaN: no figure)."""
        cleaned: dict[str, Any] = finite_json(asdict(self))
        return cleaned


def _bounds(low: float | None, high: float | None) -> str:
    if low is None:
        return f"<= {high:g}"
    if high is None:
        return f">= {low:g}"
    return f"[{low:g}, {high:g}]"


def gate(
    champion: Predictor,
    challenger: Predictor,
    holdout: pa.Table,
    *,
    target: str,
    spec: GateSpec,
    sensitive: Sequence[str] = (),
    positive_label: str | None = None,
    parity_ok: bool = True,
    seed: int = 0,
) -> GateVerdict:
    """Compare a challenger with the champion on the same fresh rows and decide.

    Args:
        champion: The model serving now.
        challenger: The candidate.
        holdout: Labelled rows neither model trained on, with ``target``, every
            input of both models and the ``sensitive`` columns.
        target: The label column.
        spec: The gate's policy: metric, ``min_delta``, interval, guards.
        sensitive: Columns the fairness guards split the rows by (unused, and
            not required in ``holdout``, without a fairness guard).
        positive_label: The class the fairness guards count as selected;
            default the second class of a binary model.
        parity_ok: Whether the challenger passed its ONNX parity check.
        seed: Seed of the bootstrap resampling.

    Returns:
        The verdict. Mismatched models (a different task or class list) are
        rejected with the reason, not raised.

    Raises:
        SpecError: an unknown metric or guard (the message lists the allowed
            ones), or a fairness guard without sensitive columns or positive label.
        DataError: the holdout is empty or lacks the target, an input or a
            sensitive column, or a label is missing or not one of the classes.
    """
    family = _family(champion.task)
    metric = _check_names(spec.metric or default_metric(family), spec.guards, family)
    rows = holdout.num_rows
    mismatch = _mismatch(champion, challenger)
    if mismatch:
        nan = math.nan
        return GateVerdict(
            False, metric.name, nan, nan, nan, nan, nan, rows, {}, parity_ok, [mismatch]
        )
    improved = False
    fair = any(name in FAIRNESS for name in spec.guards)
    _check_holdout(holdout, target, (champion, challenger), sensitive if fair else ())
    positive = _positive(spec.guards, champion, sensitive, positive_label)

    scored = [_score(model, holdout, target) for model in (champion, challenger)]
    old, new, delta, low, high = _compare(metric, scored, spec.bootstrap, spec.confidence, seed)
    checks: list[tuple[bool, str]] = []
    if math.isnan(delta):
        which = [
            who
            for who, s in zip(("champion", "challenger"), scored, strict=True)
            if s.metrics[metric.name] is None
        ]
        checks.append(
            (False, f"{metric.name} is undefined for the {' and '.join(which)} on {rows} rows")
        )
    else:
        metric_checks = _metric_checks(metric, old, new, delta, (low, high), spec, rows)
        improved = metric_checks[0][0]
        checks += metric_checks

    guards: dict[str, dict[str, Any]] = {}
    for name, limit in spec.guards.items():
        if name == LATENCY:
            guards[name] = _guard(*_latency(champion, challenger, holdout), limit)
        elif name in FAIRNESS:
            guards[name] = _fairness(name, limit, scored, holdout, sensitive, positive)
        else:
            found = lookup(name, family)
            guards[name] = _guard(scored[0].metrics[name], scored[1].metrics[name], limit, found)
        checks.append((guards[name]["ok"], _guard_reason(name, guards[name])))
    if parity_ok:
        checks.append((True, "the challenger's ONNX graph passed its parity check"))
    else:
        checks.append((False, "the challenger's ONNX graph failed its parity check"))

    promote = all(ok for ok, _ in checks)
    reasons = [text for ok, text in checks if promote or not ok]
    return GateVerdict(
        promote, metric.name, old, new, delta, low, high, rows, guards, parity_ok, reasons, improved
    )


def _family(task: str) -> Family:
    return "regression" if task == "regression" else "classification"


def _check_names(name: str, guards: dict[str, float], family: Family) -> Metric:
    """The gate's metric from the table; every guard must be a known one."""
    metric = lookup(name, family, field="loop.gate.metric")
    allowed = metric_names(family)
    known = (*GUARDS, *allowed) if family == "classification" else (LATENCY, *allowed)
    for name in guards:
        if name not in known:
            raise SpecError(
                f"loop.gate.guards: unknown guard {name!r} for a {family} model; "
                "expected one of " + ", ".join(known)
            )
    return metric


def _check_holdout(
    holdout: pa.Table, target: str, models: Sequence[Predictor], sensitive: Sequence[str]
) -> None:
    if holdout.num_rows == 0:
        raise DataError("holdout: no rows to compare the models on")
    columns = set(holdout.column_names)
    if target not in columns:
        raise DataError(f"holdout: no target column {target!r}")
    for model in models:
        missing = [name for name in model.input_names if name not in columns]
        if missing:
            raise DataError(
                f"holdout: {model.ref} needs input column{'s' if len(missing) > 1 else ''} "
                + ", ".join(repr(m) for m in missing)
            )
    for name in sensitive:
        if name not in columns:
            raise DataError(f"holdout: no sensitive column {name!r}")


def _mismatch(champion: Predictor, challenger: Predictor) -> str | None:
    if _family(champion.task) != _family(challenger.task):
        return (
            f"the models solve different tasks: champion {champion.ref} is {champion.task}, "
            f"challenger {challenger.ref} is {challenger.task}"
        )
    if champion.classes != challenger.classes:
        return (
            f"the models' classes differ: champion {champion.ref} has {champion.classes}, "
            f"challenger {challenger.ref} has {challenger.classes}"
        )
    return None


def _positive(
    guards: dict[str, float],
    model: Predictor,
    sensitive: Sequence[str],
    positive_label: str | None,
) -> int:
    """Index of the class fairness guards count as selected (0 when none asks for it)."""
    asked = [name for name in guards if name in FAIRNESS]
    if not asked:
        return 0
    if not sensitive:
        raise SpecError(f"loop.gate.guards: {asked[0]} needs sensitive columns, none were given")
    classes = model.classes or []
    if positive_label is None:
        if len(classes) != 2:
            raise SpecError(
                f"positive_label: {asked[0]} on a {len(classes)}-class model needs the "
                "positive class, one of " + ", ".join(classes)
            )
        return 1
    if positive_label not in classes:
        raise SpecError(
            f"positive_label: {positive_label!r} is not a class; expected one of "
            + ", ".join(classes)
        )
    return classes.index(positive_label)


@dataclass(frozen=True)
class _Scored:
    """One model's predictions on the holdout, checked, with every metric of its family."""

    y: npt.NDArray[Any]  # class indices or targets
    scores: FloatArray  # probabilities [rows, classes] or predicted values
    metrics: dict[str, float | None]


def _score(model: Predictor, holdout: pa.Table, target: str) -> _Scored:
    truth = holdout.column(target)
    if truth.null_count:
        missing = np.flatnonzero(truth.is_null().to_numpy(zero_copy_only=False))
        raise DataError(
            f"target {target!r}: {missing.size} rows have no label "
            f"(rows {', '.join(str(int(r)) for r in missing[:3])})"
        )
    if model.task == "regression":
        values = model.predict(holdout.select(model.input_names)).values
        assert values is not None
        y = truth.to_numpy(zero_copy_only=False)
        metrics = point_metrics("regression", y, values)  # checks both arrays
        return _Scored(
            np.asarray(y, dtype=np.float64), np.asarray(values, dtype=np.float64), metrics
        )
    assert model.classes is not None
    index = {name: i for i, name in enumerate(model.classes)}
    labels = [str(v) for v in truth.to_pylist()]
    unknown = [i for i, label in enumerate(labels) if label not in index]
    if unknown:
        shown = ", ".join(f"row {i}: {labels[i]!r}" for i in unknown[:3])
        raise DataError(
            f"target {target!r}: {len(unknown)} labels are not among the classes "
            f"{model.classes} ({shown})"
        )
    codes = np.fromiter((index[label] for label in labels), dtype=np.intp, count=len(labels))
    proba = model.predict(holdout.select(model.input_names)).probabilities
    assert proba is not None
    metrics = point_metrics("classification", codes, proba, model.classes)  # checks both
    return _Scored(codes, np.asarray(proba, dtype=np.float64), metrics)


def _compare(
    metric: Metric, scored: Sequence[_Scored], n_boot: int, confidence: float, seed: int
) -> tuple[float, float, float, float, float]:
    """Champion's and challenger's value, the delta and its paired bootstrap interval.

    Both models' draws come from the same seed over the same rows, so each
    resample scores both on the same row indices: the difference of their
    draws is the paired bootstrap of the delta. All NaN where the metric is
    undefined for either model.
    """
    old, new = (s.metrics[metric.name] for s in scored)
    if old is None or new is None:
        return (math.nan,) * 5
    delta = metric.improvement(old, new)
    champion, challenger = (
        draws(metric.name, s.y, s.scores, n_boot=n_boot, seed=seed) for s in scored
    )
    change = metric.improvement(champion, challenger)
    defined = change[np.isfinite(change)]
    if defined.size == 0:
        return old, new, delta, math.nan, math.nan
    alpha = 1.0 - confidence
    low, high = np.quantile(defined, [alpha / 2, 1 - alpha / 2])
    return old, new, delta, float(low), float(high)


def _metric_checks(
    metric: Metric,
    old: float,
    new: float,
    delta: float,
    ci: tuple[float, float],
    spec: GateSpec,
    rows: int,
) -> list[tuple[bool, str]]:
    figures = f"champion {old:.4g}, challenger {new:.4g}, delta {delta:+.4g} on {rows} rows"
    gain = metric.relative(delta, old)
    unit = " (relative)" if metric.target_units and old != 0 else ""
    name = metric.name
    if delta <= 0:
        improved = (False, f"{name} did not improve ({figures})")
    elif gain < spec.min_delta:
        improved = (
            False,
            f"{name} improved by less than min_delta {spec.min_delta:g}{unit} ({figures})",
        )
    else:
        improved = (
            True,
            f"{name} improved by at least min_delta {spec.min_delta:g}{unit} ({figures})",
        )
    low, high = ci
    interval = (
        f"the {spec.confidence * 100:g}% paired bootstrap interval of the {name} improvement "
        f"[{low:+.4g}, {high:+.4g}] ({spec.bootstrap} resamples)"
    )
    if low > 0:
        excluded = (True, f"{interval} excludes 0")
    elif high < 0:
        excluded = (not spec.require_ci, f"{interval} lies below 0")
    elif low <= 0 <= high:
        excluded = (not spec.require_ci, f"{interval} contains 0: the gain may be noise")
    else:  # NaN: the metric was undefined on every resample
        excluded = (not spec.require_ci, f"{interval} is undefined")
    if not spec.require_ci:
        excluded = (True, f"{excluded[1]} (not required: require_ci is off)")
    return [improved, excluded]


def _guard(
    champion: float | None, challenger: float | None, limit: float, metric: Metric | None = None
) -> dict[str, Any]:
    """A guard's record; ``worsening`` is positive when the challenger is worse.

    Fairness differences and latency are worse when higher; a metric of the
    table goes the way the table says.
    """
    if champion is None or challenger is None:
        worsening = None
    elif metric is None:
        worsening = challenger - champion
    else:
        worsening = -metric.improvement(champion, challenger)
    ok = worsening is not None and math.isfinite(worsening) and worsening <= limit
    return {
        "champion": champion,
        "challenger": challenger,
        "worsening": worsening,
        "limit": limit,
        "ok": ok,
    }


def _guard_reason(name: str, guard: dict[str, Any]) -> str:
    where = f" on {guard['column']!r}" if "column" in guard else ""
    unit = " ms" if name == LATENCY else ""
    head = f"guard {name}{where}"
    if guard["worsening"] is None or not math.isfinite(guard["worsening"]):
        return f"{head} is undefined on the holdout (champion {guard['champion']}, challenger {guard['challenger']})"
    figures = (
        f"champion {guard['champion']:.4g}{unit}, challenger {guard['challenger']:.4g}{unit}: "
        f"worse by {guard['worsening']:+.4g}{unit}"
    )
    verdict = "within" if guard["ok"] else "more than"
    return f"{head}: {figures}, {verdict} the limit {guard['limit']:g}{unit}"


def _groups(column: pa.ChunkedArray) -> npt.NDArray[np.object_]:
    return np.array(
        [MISSING_GROUP if v is None else str(v) for v in column.to_pylist()], dtype=object
    )


def _fairness(
    name: str,
    limit: float,
    scored: Sequence[_Scored],
    holdout: pa.Table,
    sensitive: Sequence[str],
    positive: int,
) -> dict[str, Any]:
    """Fairlearn's difference for each sensitive column; the column that worsens most binds."""
    from fairlearn.metrics import (  # type: ignore[import-untyped]
        demographic_parity_difference,
        equalized_odds_difference,
    )

    difference = {
        "demographic_parity_difference": demographic_parity_difference,
        "equalized_odds_difference": equalized_odds_difference,
    }[name]
    actual = (scored[0].y == positive).astype(np.int8)
    selected = [(s.scores.argmax(axis=1) == positive).astype(np.int8) for s in scored]
    by_column: dict[str, dict[str, Any]] = {}
    for column in sensitive:
        groups = _groups(holdout.column(column))
        old, new = (float(difference(actual, sel, sensitive_features=groups)) for sel in selected)
        by_column[column] = _guard(old, new, limit)
    worst = max(by_column, key=lambda c: _rank(by_column[c]["worsening"]))
    return {**by_column[worst], "column": worst, "by_column": by_column}


def _rank(worsening: float | None) -> float:
    """Sort key: an undefined worsening binds before any number."""
    return math.inf if worsening is None or not math.isfinite(worsening) else worsening


def _latency(champion: Predictor, challenger: Predictor, holdout: pa.Table) -> tuple[float, float]:
    """Median milliseconds of a one-row predict for each model, calls interleaved."""
    models = (champion, challenger)
    rows = [
        [holdout.slice(i % holdout.num_rows, 1).select(m.input_names) for m in models]
        for i in range(LATENCY_CALLS)
    ]
    for model, row in zip(models, rows[0], strict=True):
        model.predict(row)  # warm-up: first calls allocate
    times: list[list[float]] = [[], []]
    for i, row in enumerate(rows):
        for which in (0, 1) if i % 2 == 0 else (1, 0):
            start = time.perf_counter()
            models[which].predict(row[which])
            times[which].append(time.perf_counter() - start)
    old, new = (float(np.median(t)) * 1000.0 for t in times)
    return old, new
