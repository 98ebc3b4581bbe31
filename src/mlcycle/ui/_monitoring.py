"""The monitoring pages: each model's monitoring runs over time, and their alerts.

A monitoring run (:func:`mlcycle.monitor.monitor`) records a
``monitor.report`` event naming its JSON report (an artifact) and one
``monitor.alert`` event per finding. These pages read only those: the newest
``last`` reports of a model (never all of them), each report's per-column
drift, realised and estimated performance, fairness differences and share of
out-of-distribution inputs, drawn as one point per run. The monitoring stack
itself (numpy, scipy, ONNX Runtime) is never imported.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlcycle.errors import MlcycleError

if TYPE_CHECKING:
    from mlcycle.project import Project
    from mlcycle.store import EventRecord

__all__ = [
    "ALERT",
    "DEFAULT_REPORTS",
    "MAX_REPORTS",
    "REPORT",
    "ModelMonitoring",
    "Series",
    "model_monitoring",
    "overview",
]

REPORT = "monitor.report"
ALERT = "monitor.alert"
DEFAULT_REPORTS = 50  # the runs a model's page draws unless asked for more
MAX_REPORTS = 500
MAX_ALERTS = 200
READERS = 8


@dataclass
class ModelMonitoring:
    """One model's newest monitoring runs, oldest first, and what to draw of them."""

    name: str
    reports: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[EventRecord] = field(default_factory=list)
    plots: dict[str, dict[str, Any]] = field(default_factory=dict)
    unreadable: int = 0  # reports whose JSON is gone or malformed: listed, not drawn

    @property
    def html(self) -> dict[str, str]:
        """Report JSON sha256 → its HTML page's sha256 (an alert names the JSON one)."""
        return {r["report"]: r["html"] for r in self.reports if r.get("report") and r.get("html")}


def overview(project: Project, limit: int = 50) -> dict[str, Any]:
    """Every registered model with its newest monitoring run, and the newest alerts."""
    rows = []
    for model in project.store.registry.list_models():
        latest = project.store.list_events(
            entity_type="model", entity_id=model.name, action=REPORT, limit=1
        )
        rows.append({"model": model.name, "latest": latest[0] if latest else None})
    alerts = project.store.list_events(entity_type="model", action=ALERT, limit=limit)
    return {"models": rows, "alerts": alerts}


def model_monitoring(project: Project, name: str, last: int = DEFAULT_REPORTS) -> ModelMonitoring:
    """The newest ``last`` monitoring runs of ``name`` (at most :data:`MAX_REPORTS`).

    Raises:
        NotFoundError: no model of that name.
    """
    project.store.registry.list_versions(name)  # NotFoundError for an unknown model
    last = max(1, min(last, MAX_REPORTS))
    events = project.store.list_events(
        entity_type="model", entity_id=name, action=REPORT, limit=last
    )
    found = ModelMonitoring(name)
    series = Series()
    events.reverse()  # oldest first
    # the reports are read side by side: on S3 each one is a request
    with ThreadPoolExecutor(max_workers=READERS) as pool:
        reports = list(pool.map(lambda e: _read_report(project, e.details.get("report")), events))
    for event, report in zip(events, reports, strict=True):
        d = event.details
        found.reports.append(
            {
                "at": event.at,
                "version": d.get("version"),
                "rows": d.get("rows"),
                "alerts": list(d.get("alerts") or []),
                "report": d.get("report"),
                "html": d.get("html"),
            }
        )
        if report is None:
            found.unreadable += 1
        else:
            series.add(event.at.isoformat(), report)
    found.plots = series.plots()
    found.alerts = project.store.list_events(
        entity_type="model", entity_id=name, action=ALERT, limit=MAX_ALERTS
    )
    return found


def _read_report(project: Project, sha: object) -> dict[str, Any] | None:
    if not isinstance(sha, str):
        return None
    try:
        report = json.loads(project.artifacts.read_bytes(sha))
    except (MlcycleError, OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def _line(name: str, points: list[tuple[Any, ...]], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "mode": "lines+markers",
        "x": [p[0] for p in points],
        "y": [p[1] for p in points],
        **extra,
    }


def _interval(name: str, points: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """A line with its bootstrap interval as error bars (where the report has one)."""
    values = [p["value"] for _, p in points]
    high = [
        (p.get("high") if p.get("high") is not None else v) - v
        for (_, p), v in zip(points, values, strict=True)
    ]
    low = [
        v - (p.get("low") if p.get("low") is not None else v)
        for (_, p), v in zip(points, values, strict=True)
    ]
    return _line(
        name,
        [(at, v) for (at, _), v in zip(points, values, strict=True)],
        error_y={"type": "data", "array": high, "arrayminus": low, "visible": True},
    )


@dataclass
class Series:
    """The figures of successive monitoring reports (``mlcycle-monitor/1``), one point each."""

    drift: dict[str, list[tuple[str, float | None, str]]] = field(default_factory=dict)
    realised: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    estimated: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fairness: dict[str, list[tuple[str, float | None]]] = field(default_factory=dict)
    ood: list[tuple[str, float | None]] = field(default_factory=list)

    def add(self, at: str, report: dict[str, Any]) -> None:
        """One report's point at time ``at`` (ISO); a figure it lacks is left out (or None)."""
        for c in (report.get("features") or {}).get("columns") or []:
            self.drift.setdefault(str(c.get("column")), []).append(
                (at, c.get("statistic"), str(c.get("test")))
            )
        performance = report.get("performance")
        if performance and performance.get("value") is not None:
            self.realised.append((at, performance))
        metric = (performance or {}).get("metric") or "accuracy"
        guess = (report.get("estimated") or {}).get(metric)
        if guess and guess.get("value") is not None:
            self.estimated.append((at, {"metric": metric, **guess}))
        for column, result in (report.get("fairness") or {}).items():
            for key, what in _DIFFERENCES.items():
                if result.get(key) is not None:
                    self.fairness.setdefault(f"{column}: {what}", []).append((at, result[key]))
        self.ood.append((at, (report.get("ood") or {}).get("share")))

    def plots(self) -> dict[str, dict[str, Any]]:
        """What each plot draws: ``{id: {title, y, traces}}``, only those with data."""
        plots: dict[str, dict[str, Any]] = {}
        if self.drift:
            plots["drift"] = {
                "title": "drift statistic per column",
                "y": "statistic",
                "traces": [
                    _line(f"{column} ({points[-1][2]})", points)
                    for column, points in self.drift.items()
                ],
            }
        performance = []
        if self.realised:
            metric = self.realised[-1][1].get("metric")
            performance.append(_interval(f"realised {metric}", self.realised))
        if self.estimated:
            metric = self.estimated[-1][1]["metric"]
            performance.append(_interval(f"estimated {metric} (CBPE)", self.estimated))
        if performance:
            plots["performance"] = {"title": "performance", "y": "value", "traces": performance}
        if self.fairness:
            plots["fairness"] = {
                "title": "fairness differences",
                "y": "difference",
                "traces": [_line(name, points) for name, points in self.fairness.items()],
            }
        if any(share is not None for _, share in self.ood):
            plots["ood"] = {
                "title": "out-of-distribution share",
                "y": "share of rows",
                "traces": [_line("out-of-distribution", self.ood)],
            }
        return plots


# The fairness differences a report gives per sensitive column, and their names on the plot.
_DIFFERENCES = {
    "demographic_parity_difference": "parity",
    "equalized_odds_difference": "equalized odds",
}
