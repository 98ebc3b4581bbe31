"""A monitoring run: a window of current data against the model's reference.

The reference is what was recorded when the version was registered: the
training rows of its dataset version, its answers on the validation split
with the truth, and its out-of-distribution detector. The current window is a
file, or the prediction log of the served model (the last N rows, or the rows
since a moment) with the labels that came back later as feedback.

One run checks, in order: the data quality of the window (inputs absent or
empty, values that are not finite numbers, labels that are not classes: see
:mod:`mlcycle.monitor._quality`), feature drift, prediction drift, target
drift (with labels), realised performance with a bootstrap interval (with
labels), estimated performance without labels (CBPE), bias per sensitive
column and their intersection (Fairlearn, with bootstrap intervals), the
share of out-of-distribution inputs, and the same figures over
``timeline_windows`` consecutive slices of the window. Drift and the
out-of-distribution share give no verdict on too few rows (see
``monitor.min_rows``); every report states the window's size. Findings become
alerts: events in the store, and a POST to the spec's webhook. The whole
result is stored as a JSON report, from which :func:`render_monitor_report`
draws the HTML page. ONNX Runtime only; torch is never imported.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle.errors import DataError, SpecError
from mlcycle.evaluate import default_metric
from mlcycle.monitor._alerts import Alert, Delivery, dispatch
from mlcycle.monitor._attribution import attribution_drift
from mlcycle.monitor._fairness import FairnessResult, fairness_report
from mlcycle.monitor._performance import CBPE, PerformanceResult, window_performance
from mlcycle.monitor._quality import DataQuality, check_quality
from mlcycle.monitor._report import (
    ColumnType,
    DriftOptions,
    DriftReport,
    TestChoice,
    drift_report,
    missing_mask,
)
from mlcycle.monitor._window import (
    SOURCES,
    Reference,
    Source,
    Window,
    load_reference,
    read_window,
)
from mlcycle.registry import load

if TYPE_CHECKING:
    from mlcycle.project import Project
    from mlcycle.spec import MonitorSpec
    from mlcycle.store import ModelVersionRecord

__all__ = ["MonitorResult", "drift_options", "monitor", "parse_since"]

Array = np.ndarray[Any, Any]
_SINCE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_HIST_BINS = 30
_HIST_COLUMNS = 100
_TOP_CATEGORIES = 20
# The fewest rows for an out-of-distribution verdict when monitor.min_rows is not set: with the
# default limit (5 %) one odd row in 30 stays under it, and two rows in 30 (at a flag rate of 1 %,
# a threshold estimated on ~100 validation rows) happen in under 5 % of windows.
OOD_MIN_ROWS = 30
CBPE_ASSUMPTIONS = (
    "Estimated performance assumes no concept shift (P(label | inputs) is what it was on "
    "the reference) and that the model's scores, calibrated on the validation split, stay "
    "calibrated. A change in the meaning of the data is invisible to it: compare with the "
    "realised performance once labels arrive."
)


def parse_since(text: str, *, what: str = "duration") -> timedelta:
    """``30m``, ``1h``, ``2d`` → a duration; ``what`` names it in the error (CLI: ``--since``).

    Example:
        >>> parse_since("90m")
        datetime.timedelta(seconds=5400)
    """
    match = _SINCE.match(text.strip())
    if not match:
        raise SpecError(f"{what} {text!r}: expected a number and s, m, h or d (e.g. 1h)")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def drift_options(spec: MonitorSpec) -> DriftOptions:
    """The drift settings of the spec's ``monitor:`` section."""
    return DriftOptions(
        tests={c: TestChoice(s.test, s.threshold) for c, s in spec.columns.items()},
        multiple_testing=spec.multiple_testing,
        drift_share=spec.drift_share,
        defaults=spec.defaults,
        min_rows=spec.min_rows,
    )


@dataclass(frozen=True)
class MonitorResult:
    """What one monitoring run found; :meth:`to_dict` is the stored JSON report."""

    model: str
    features: DriftReport
    prediction: DriftReport | None
    target: DriftReport | None
    performance: PerformanceResult | None
    estimated: dict[str, Any] | None
    fairness: dict[str, FairnessResult]
    ood: dict[str, Any] | None
    timeline: list[dict[str, Any]]
    alerts: list[Alert]
    report: dict[str, Any] = field(repr=False)
    report_sha256: str = ""
    webhook: Delivery | None = None
    html: Path | None = None
    quality: DataQuality = field(default_factory=lambda: DataQuality(0))
    recent_performance: PerformanceResult | None = None  # the newest labelled rows only
    attribution: dict[str, Any] | None = None  # attribution drift (monitor.attribution)

    @property
    def healthy(self) -> bool:
        return not self.alerts

    @property
    def window(self) -> dict[str, Any]:
        """Where the rows came from and how many: ``source``, ``rows``, ``labelled``…"""
        return dict(self.report.get("window", {}))

    def to_dict(self) -> dict[str, Any]:
        """The CLI's ``--json``: every column with its test, statistic and ``drift``."""
        features = self.features.to_dict()
        return {
            "model": self.model,
            "healthy": self.healthy,
            "window": self.window,
            "alerts": [a.to_dict() for a in self.alerts],
            "data_quality": self.quality.to_dict(),
            "columns": features["columns"],
            "dataset": features["dataset"],
            "prediction": None
            if self.prediction is None
            else self.prediction.to_dict()["columns"][0],
            "target": None if self.target is None else self.target.to_dict()["columns"][0],
            "performance": None if self.performance is None else self.performance.to_dict(),
            "estimated": self.estimated,
            "fairness": {k: v.to_dict() for k, v in self.fairness.items()},
            "ood": self.ood,
            "attribution": self.attribution,
            "timeline": self.timeline,
            "report_sha256": self.report_sha256,
            "webhook": None if self.webhook is None else self.webhook.__dict__,
            "html": None if self.html is None else str(self.html),
            "notes": list(self.report.get("notes", [])),
        }


# -- the pieces of a run ----------------------------------------------------------------------


def _column_types(reference: Reference, window: Window) -> dict[str, ColumnType]:
    return {
        n: ("categorical" if a.dtype == object else "numeric") for n, a in reference.inputs.items()
    }


def _testable(window: Window) -> list[str]:
    """The inputs with at least one value in ``window`` (an empty one cannot be tested)."""
    return [n for n, values in window.inputs.items() if not missing_mask(values).all()]


def _feature_drift(
    reference: Reference, window: Window, types: dict[str, ColumnType], options: DriftOptions
) -> DriftReport:
    return drift_report(
        reference.inputs,
        window.inputs,
        column_types=types,
        columns=_testable(window),
        options=options,
    )


def _prediction_drift(
    version: ModelVersionRecord, reference: Reference, window: Window, options: DriftOptions
) -> DriftReport | None:
    regression = version.task == "regression"
    ref = reference.values if regression else reference.labels
    cur = window.values if regression else window.labels
    kind: ColumnType = "numeric" if regression else "categorical"
    if ref is None or cur is None or window.n == 0:
        return None
    return drift_report(
        {"prediction": ref}, {"prediction": cur}, column_types={"prediction": kind}, options=options
    )


def _target_drift(
    version: ModelVersionRecord, reference: Reference, window: Window, options: DriftOptions
) -> DriftReport | None:
    if window.actual is None or window.has_actual is None or not window.has_actual.any():
        return None
    kind: ColumnType = "numeric" if version.task == "regression" else "categorical"
    return drift_report(
        {"target": reference.actual},
        {"target": window.actual[window.has_actual]},
        column_types={"target": kind},
        options=options,
    )


def _reference_metrics(version: ModelVersionRecord, reference: Reference) -> dict[str, float]:
    return {k: float(v) for k, v in reference.test_metrics.items() if isinstance(v, int | float)}


def _performance(
    version: ModelVersionRecord, reference: Reference, window: Window, spec: MonitorSpec
) -> PerformanceResult | None:
    if window.has_actual is None or not window.has_actual.any():
        return None
    has = window.has_actual
    return window_performance(
        task=version.task,
        classes=version.signature.get("classes"),
        y_true=window.actual[has] if window.actual is not None else np.empty(0),
        probabilities=None if window.probabilities is None else window.probabilities[has],
        values=None if window.values is None else window.values[has],
        reference=_reference_metrics(version, reference),
        spec=spec.performance,
    )


def _fit_cbpe(version: ModelVersionRecord, reference: Reference) -> CBPE | None:
    if version.task == "regression" or reference.probabilities is None:
        return None
    classes = list(version.signature.get("classes") or [])
    return CBPE.fit(reference.probabilities, reference.actual, classes)


def _estimate(cbpe: CBPE | None, window: Window, n_boot: int) -> dict[str, Any] | None:
    if cbpe is None or window.probabilities is None or window.n == 0:
        return None
    estimates = cbpe.estimate(window.probabilities, n_boot=n_boot)
    return {name: {"value": e.value, "low": e.low, "high": e.high} for name, e in estimates.items()}


def _sensitive_columns(
    project: Project, version: ModelVersionRecord, spec: MonitorSpec
) -> list[str]:
    if spec.fairness.sensitive:
        return list(spec.fairness.sensitive)
    dataset = project.datasets.get(str(version.lineage["dataset"]))
    columns = dataset.schema.get("columns", []) if isinstance(dataset.schema, dict) else []
    return [c["name"] for c in columns if isinstance(c, dict) and c.get("role") == "sensitive"]


def _positive_label(version: ModelVersionRecord, spec: MonitorSpec) -> str | None:
    classes = list(version.signature.get("classes") or [])
    if spec.fairness.positive_label is not None:
        return spec.fairness.positive_label
    return classes[-1] if len(classes) == 2 else None


def _fairness(
    version: ModelVersionRecord,
    reference: Reference,
    window: Window,
    spec: MonitorSpec,
    columns: list[str],
    notes: list[str],
) -> dict[str, FairnessResult]:
    positive = _positive_label(version, spec)
    if version.task == "regression" or not columns or window.labels is None:
        return {}
    if positive is None:
        notes.append("fairness: set monitor.fairness.positive_label for a multiclass model")
        return {}
    current: dict[str, Array] = {}
    for column in columns:
        values = window.extra.get(column, window.inputs.get(column))
        if values is None:
            notes.append(f"fairness: the sensitive column {column!r} is not in the current data")
        elif column not in reference.validation.column_names:
            notes.append(f"fairness: the sensitive column {column!r} is not in the dataset")
        else:
            current[column] = np.asarray(values, dtype=object)
    if not current:
        return {}
    # One report over every column present: each on its own, and their intersection.
    watched = spec.fairness.model_copy(update={"sensitive": tuple(current)})
    assert reference.labels is not None
    # Strings, as the window's sensitive columns are read (missing values stay None).
    groups = {c: reference.validation.column(c).cast("string").to_pylist() for c in current}
    baseline = fairness_report(
        reference.labels,
        {c: np.asarray(values, dtype=object) for c, values in groups.items()},
        y_true=reference.actual,
        positive_label=positive,
        spec=watched,
    )
    labelled = window.has_actual is not None and bool(window.has_actual.all())
    return fairness_report(
        window.labels,
        current,
        y_true=window.actual if labelled else None,
        positive_label=positive,
        spec=watched,
        reference=baseline,
    )


def ood_min_rows(spec: MonitorSpec) -> int:
    """The fewest rows for an out-of-distribution verdict: ``min_rows``, or enough that one
    flagged row cannot exceed ``ood.max_share`` (at least :data:`OOD_MIN_ROWS`)."""
    if spec.min_rows is not None:
        return spec.min_rows
    return max(OOD_MIN_ROWS, math.floor(1 / spec.ood.max_share) + 1)


def _ood(reference: Reference, window: Window, spec: MonitorSpec) -> dict[str, Any] | None:
    logged = window.ood_flags is not None
    unlogged = (
        np.arange(window.n)
        if not logged
        else np.flatnonzero(~window.ood_logged)
        if window.ood_logged is not None
        else np.empty(0, dtype=np.intp)
    )
    flags = window.ood_flags.copy() if window.ood_flags is not None else np.zeros(window.n, bool)
    counted = np.ones(window.n, dtype=bool)
    out_of_range = None
    if unlogged.size and reference.ood is not None:  # batch rows, or a file: score them now
        part = window.take(unlogged)
        try:
            scores = reference.ood.score(part.feeds if part.feeds is not None else part.inputs)
        except DataError:  # inputs the detector needs are not in the log (an image): not counted
            counted[unlogged] = False
        else:
            flags[unlogged] = scores.flagged
            if not logged:
                out_of_range = scores.out_of_range
    elif unlogged.size:
        counted[unlogged] = False
    if not counted.any():
        return None
    flags = flags[counted]
    share = float(flags.mean())
    need = ood_min_rows(spec)
    decided = len(flags) >= need
    return {
        "rows": len(flags),
        "flagged": int(flags.sum()),
        "share": share,
        "out_of_range_share": None if out_of_range is None else float(out_of_range.mean()),
        "max_share": spec.ood.max_share,
        "min_rows": need,
        "alert": share > spec.ood.max_share if decided else None,
        "source": "served"
        if not unlogged.size
        else ("scored now" if not logged else "served and scored now"),
    }


def _histograms(reference: Reference, window: Window, report: DriftReport) -> dict[str, Any]:
    """Binned reference and current distributions per column, drifted columns first."""
    order = sorted(report.columns, key=lambda c: (not c.drift, c.column))[:_HIST_COLUMNS]
    out: dict[str, Any] = {}
    for c in order:
        ref, cur = reference.inputs[c.column], window.inputs[c.column]
        if c.type == "numeric":
            ref_f, cur_f = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
            both = np.concatenate([ref_f, cur_f])
            if both.size == 0:
                continue
            lo, hi = np.quantile(both, [0.005, 0.995])
            if hi <= lo:
                lo, hi = float(both.min()) - 0.5, float(both.max()) + 0.5
            edges = np.linspace(lo, hi, _HIST_BINS + 1)
            out[c.column] = {
                "type": "numeric",
                "edges": edges.tolist(),
                "reference": np.histogram(np.clip(ref_f, lo, hi), edges)[0].tolist(),
                "current": np.histogram(np.clip(cur_f, lo, hi), edges)[0].tolist(),
            }
        else:
            ref_s = np.asarray(ref, dtype=object).astype(str)
            cur_s = np.asarray(cur, dtype=object).astype(str)
            values, counts = np.unique(np.concatenate([ref_s, cur_s]), return_counts=True)
            top = values[np.argsort(-counts, kind="stable")][:_TOP_CATEGORIES]
            out[c.column] = {
                "type": "categorical",
                "categories": top.tolist(),
                "reference": [int((ref_s == v).sum()) for v in top],
                "current": [int((cur_s == v).sum()) for v in top],
            }
    return out


def _timeline(
    version: ModelVersionRecord,
    reference: Reference,
    window: Window,
    spec: MonitorSpec,
    options: DriftOptions,
    cbpe: CBPE | None,
    sensitive: list[str],
    features: DriftReport,
) -> list[dict[str, Any]]:
    """The window cut into ``timeline_windows`` consecutive equal-count slices, in time order.

    A slice holds at least as many rows as the drift tests and the
    out-of-distribution share need for a verdict, so a small window has fewer
    slices (or one).
    """
    if window.n == 0:
        return []
    need = max([ood_min_rows(spec), *(c.min_rows for c in features.columns)])
    k = min(spec.timeline_windows, max(1, window.n // need))
    order = (
        np.argsort(window.times, kind="stable") if window.times is not None else np.arange(window.n)
    )
    types = _column_types(reference, window)
    # The metric realised below is the performance window's: the spec's, or the table's default.
    metric = spec.performance.metric or default_metric(version.task)
    rows: list[dict[str, Any]] = []
    for i, index in enumerate(np.array_split(order, k)):
        part = window.take(index)
        drift = _feature_drift(reference, part, types, options)
        row: dict[str, Any] = {
            "window": i,
            "rows": part.n,
            "start": None if part.times is None else str(part.times.min()),
            "end": None if part.times is None else str(part.times.max()),
            "share_drifted": drift.share_drifted if drift.drift is not None else None,
            "drift": drift.drift,
            "labelled": part.n_labelled,
            "metric": metric,
            "realised": None,
            "estimated": None,
            "ood_share": None,
        }
        if part.n_labelled >= spec.performance.min_labels:
            realised = _performance(version, reference, part, spec)
            row["realised"] = None if realised is None else realised.value
        estimate = _estimate(cbpe, part, n_boot=0)
        if estimate is not None and "accuracy" in estimate:
            row["estimated"] = estimate["accuracy"]["value"]
        ood = _ood(reference, part, spec)
        if ood is not None and ood["alert"] is not None:
            row["ood_share"] = ood["share"]
        for name, fair in _fairness(version, reference, part, spec, sensitive, []).items():
            row[f"dpd:{name}"] = fair.demographic_parity_difference
            check = fair.checks.get("demographic_parity_difference")
            row[f"dpd_interval:{name}"] = None if check is None else [check.low, check.high]
        rows.append(row)
    return rows


def _alerts(
    quality: DataQuality,
    features: DriftReport,
    prediction: DriftReport | None,
    target: DriftReport | None,
    performance: PerformanceResult | None,
    estimated: dict[str, Any] | None,
    reference_metrics: dict[str, float],
    fairness: dict[str, FairnessResult],
    ood: dict[str, Any] | None,
    spec: MonitorSpec,
    attribution: dict[str, Any] | None = None,
) -> list[Alert]:
    alerts = quality.alerts()
    drifted = features.drifted_columns
    if features.drift:
        alerts.append(
            Alert(
                "dataset_drift",
                f"dataset drift: {len(drifted)} of {len(features.columns)} inputs drifted "
                f"({', '.join(drifted[:5])})",
                {"columns": drifted, "share": features.share_drifted},
            )
        )
    elif drifted:
        alerts.append(
            Alert(
                "feature_drift", f"feature drift in {', '.join(drifted[:5])}", {"columns": drifted}
            )
        )
    if prediction is not None and prediction.drift:
        alerts.append(
            Alert(
                "prediction_drift",
                "prediction drift: the distribution of the model's answers moved",
            )
        )
    if target is not None and target.drift:
        alerts.append(
            Alert("target_drift", "target drift: the distribution of the true labels moved")
        )
    if performance is not None and performance.alert:
        alerts.append(
            Alert("performance", f"performance: {performance.reason}", performance.to_dict())
        )
    if estimated is not None and "accuracy" in estimated and "accuracy" in reference_metrics:
        e, ref = estimated["accuracy"], reference_metrics["accuracy"]
        if ref - e["value"] > spec.performance.max_drop and e["high"] < ref:
            alerts.append(
                Alert(
                    "estimated_performance",
                    f"estimated accuracy {e['value']:.3f} (CBPE, {e['low']:.3f}-{e['high']:.3f}) "
                    f"is more than {spec.performance.max_drop} below the reference {ref:.3f}",
                    {"estimate": e, "reference": ref},
                )
            )
    for result in fairness.values():
        checks = {name: asdict(c) for name, c in result.checks.items() if c.alert}
        for message in result.alerts:
            details = {"column": result.column, "checks": checks}
            alerts.append(Alert("fairness", f"fairness: {message}", details))
    if ood is not None and ood["alert"]:  # None: too few rows for a verdict
        alerts.append(
            Alert(
                "ood",
                f"out-of-distribution inputs: {ood['share']:.1%} of rows flagged "
                f"(limit {ood['max_share']:.1%})",
                {"share": ood["share"]},
            )
        )
    if attribution is not None and attribution["alert"]:
        ranked = sorted(attribution["current"], key=lambda n: -attribution["current"][n])
        alerts.append(
            Alert(
                "attribution_drift",
                f"attribution drift: nDCG {attribution['ndcg']:.3f} of the inputs' ranking "
                f"(limit {attribution['min_ndcg']}); now led by {', '.join(ranked[:3])}",
                {"ndcg": attribution["ndcg"]},
            )
        )
    return alerts


def _verdict_notes(features: DriftReport, ood: dict[str, Any] | None) -> list[str]:
    """Why a check gave no verdict: too few rows in the window."""
    notes = []
    undecided = [c for c in features.columns if c.drift is None]
    if undecided:
        need = max(c.min_rows for c in undecided)
        notes.append(
            f"drift: no verdict for {len(undecided)} of {len(features.columns)} inputs: "
            f"{min(c.rows for c in undecided)} rows, fewer than the {need} their tests need "
            "(monitor.min_rows)"
        )
    if ood is not None and ood["alert"] is None:
        notes.append(
            f"out-of-distribution: no verdict on {ood['rows']} rows, fewer than "
            f"{ood['min_rows']} (monitor.min_rows)"
        )
    return notes


def monitor(
    project: Project,
    ref: str,
    *,
    current: str | Path | None = None,
    since: timedelta | None = None,
    last: int | None = None,
    options: DriftOptions | None = None,
    spec: MonitorSpec | None = None,
    html: str | Path | None = None,
    recent_labels: int | None = None,
    source: Source = "all",
) -> MonitorResult:
    """Check a window of current data against ``ref``'s reference; see the module doc.

    Args:
        current: a CSV/Parquet file of current rows (default: the prediction log).
        since, last: the log window: rows since a moment before now, or the last N.
        options: drift settings (default: from ``spec``).
        spec: the ``monitor:`` settings (default: the project's).
        html: also write the HTML report there (and store it as an artifact).
        recent_labels: also judge the realised performance of the newest this
            many labelled rows of the window (``MonitorResult.recent_performance``;
            the loop's trigger: a change of concept shows there first).
        source: the log's rows to read: ``serve`` (served), ``batch`` (batch
            scored) or ``all`` (both). Shadow and failed requests never count.

    Raises:
        NotFoundError: the model is unknown, or the window holds no rows.
        DataError: the current data cannot be read (an empty file, a column
            named twice).
    """
    spec = spec or project.spec.monitor
    options = options or drift_options(spec)
    version = project.store.registry.get(ref)
    predictor = load(version.ref, project=project)
    sensitive = _sensitive_columns(project, version, spec)
    reference = load_reference(project, version, predictor)
    window = read_window(
        project,
        version,
        predictor,
        current=current,
        since=since,
        last=last,
        extra_columns=sensitive,
        source=source,
    )
    classes = version.signature.get("classes")
    window, scored, quality = check_quality(
        window, version.task, None if classes is None else [str(c) for c in classes]
    )
    notes: list[str] = quality.findings()
    types = _column_types(reference, window)
    features = _feature_drift(reference, window, types, options)
    # the model's answers: only the rows whose outputs are numbers the statistics can take
    prediction = _prediction_drift(version, reference, scored, options)
    target = _target_drift(version, reference, window, options)
    performance = _performance(version, reference, scored, spec)
    recent = None
    if recent_labels is not None and scored.has_actual is not None:
        newest = np.flatnonzero(scored.has_actual)[-recent_labels:]
        recent = _performance(version, reference, scored.take(newest), spec)
    cbpe = _fit_cbpe(version, reference)
    estimated = _estimate(cbpe, scored, n_boot=spec.performance.bootstrap)
    fairness = _fairness(version, reference, scored, spec, sensitive, notes)
    ood = _ood(reference, window, spec)
    attribution = attribution_drift(
        predictor,
        reference,
        window,
        None if reference.ood is None else reference.ood.to_dict(),
        spec.attribution,
    )
    if attribution is not None and attribution.get("skipped"):
        notes.append(f"attribution drift: {attribution['skipped']}")
    elif attribution is not None and attribution["alert"] is None:
        notes.append(
            f"attribution drift: no verdict on {min(attribution['rows'].values())} rows, "
            f"fewer than {spec.attribution.min_rows} (monitor.attribution.min_rows)"
        )
    timeline = _timeline(version, reference, scored, spec, options, cbpe, sensitive, features)
    reference_metrics = _reference_metrics(version, reference)
    notes += _verdict_notes(features, ood)
    alerts = _alerts(
        quality,
        features,
        prediction,
        target,
        performance,
        estimated,
        reference_metrics,
        fairness,
        ood,
        spec,
        attribution,
    )
    report = {
        "format": "mlcycle-monitor/1",
        "model": version.ref,
        "task": version.task,
        "at": datetime.now(UTC).isoformat(),
        "window": {
            "source": window.source,
            "log_sources": list(SOURCES[source]) if current is None else None,
            "rows": window.n,
            "labelled": window.n_labelled,
            "last": last,
            "since_s": since.total_seconds() if since else None,
            "min_rows": spec.min_rows,
        },
        "healthy": not alerts,
        "alerts": [a.to_dict() for a in alerts],
        "data_quality": quality.to_dict(),
        "features": features.to_dict(),
        "prediction": None if prediction is None else prediction.to_dict(),
        "target": None if target is None else target.to_dict(),
        "reference_metrics": reference_metrics,
        "performance": None if performance is None else performance.to_dict(),
        "estimated": estimated,
        "estimated_assumptions": CBPE_ASSUMPTIONS if estimated is not None else None,
        "fairness": {k: v.to_dict() for k, v in fairness.items()},
        "ood": ood,
        "attribution": attribution,
        "timeline": timeline,
        "histograms": _histograms(reference, window, features),
        "notes": notes,
    }
    blob = json.dumps(report, default=str).encode()
    sha = project.artifacts.put_bytes(blob, "application/json").sha256
    html_path = None
    html_sha = None
    if html is not None:
        from mlcycle.monitor._html import render_monitor_report

        html_path = render_monitor_report(report, html)
        html_sha = project.artifacts.put_file(html_path, "text/html").sha256
    project.store.record_event(
        "monitor.report",
        "model",
        version.name,
        actor=project.actor,
        details={
            "version": version.version,
            "report": sha,
            "html": html_sha,
            "alerts": [a.message for a in alerts],
            "rows": window.n,
        },
    )
    delivery = dispatch(
        project.store,
        model=version.name,
        version=version.version,
        alerts=alerts,
        report_sha256=sha,
        actor=project.actor,
        webhook=spec.webhook,
        timeout=spec.webhook_timeout_s,
        extra={"at": report["at"], "window": report["window"]},
    )
    return MonitorResult(
        version.ref,
        features,
        prediction,
        target,
        performance,
        estimated,
        fairness,
        ood,
        timeline,
        alerts,
        report,
        sha,
        delivery,
        html_path,
        quality,
        recent,
        attribution,
    )
