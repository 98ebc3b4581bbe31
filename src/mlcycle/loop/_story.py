"""The story of a model's loop as one HTML page, drawn from the store alone.

Every monitoring run left a report (drift share, realised and estimated
performance, out-of-distribution share) and every loop decision an event with
its reasons; :func:`render_story` lays them on one timeline: how the model
did, when the loop noticed, what it retrained, how the gate judged the
challenger against the champion, each rollout step, and the promotion or
rollback. ``mlcycle loop status --html`` and ``mlcycle demo`` write it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle._html import esc, fmt, html_page, section, table, write_page
from mlcycle.evaluate._figures import Figures
from mlcycle.store import history

if TYPE_CHECKING:
    from mlcycle.project import Project
    from mlcycle.store import EventRecord

__all__ = ["render_story", "story_points"]

_MARKS = {
    "loop.triggered": "#dd6b20",
    "loop.retrained": "#805ad5",
    "loop.rollout_step": "#3182ce",
    "loop.promoted": "#2f855a",
    "loop.rolled_back": "#c53030",
    "loop.rejected": "#c53030",
}


def story_points(project: Project, model: str, limit: int = 500) -> list[dict[str, Any]]:
    """One point per monitoring run of ``model``, oldest first, read from its stored reports."""
    events = [
        e
        for e in project.store.list_events(entity_type="model", entity_id=model, limit=limit * 8)
        if e.action == "monitor.report"
    ][:limit]
    points = []
    for event in reversed(events):
        sha = event.details.get("report")
        if not sha:
            continue
        report = json.loads(project.artifacts.read_bytes(str(sha)))
        if report.get("window", {}).get("source") != "prediction log":
            continue  # a file checked by hand is not part of the served story
        performance = report.get("performance") or {}
        estimated = (report.get("estimated") or {}).get("accuracy") or {}
        ood = report.get("ood") or {}
        points.append(
            {
                "at": event.at.isoformat(),
                "version": event.details.get("version"),
                "rows": report.get("window", {}).get("rows"),
                "share_drifted": report["features"]["dataset"]["share_drifted"],
                "metric": performance.get("metric"),
                "realised": performance.get("value"),
                "estimated": estimated.get("value"),
                "ood_share": ood.get("share"),
                "alerts": len(report.get("alerts", [])),
            }
        )
    return points


def _decisions(project: Project, model: str) -> list[EventRecord]:
    loop = history(project.store, model, limit=2000)
    return [e for e in reversed(loop) if e.action != "loop.checked"]


def _timeline(figs: Figures, points: list[dict[str, Any]], decisions: list[EventRecord]) -> str:
    if not points:
        return '<p class="note">No monitoring run has been recorded for this model yet.</p>'
    go = figs.go
    fig = figs.make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        subplot_titles=["performance on the recent window", "share of inputs drifted"],
        row_heights=[0.6, 0.4],
    )
    x = [p["at"] for p in points]
    metric = next((p["metric"] for p in points if p["metric"]), "accuracy")
    fig.add_trace(
        go.Scatter(x=x, y=[p["realised"] for p in points], name=f"{metric} (realised)"), 1, 1
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[p["estimated"] for p in points],
            name="accuracy estimated without labels (CBPE)",
            line={"dash": "dot"},
        ),
        1,
        1,
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[p["share_drifted"] for p in points],
            name="drifted share",
            fill="tozeroy",
            line={"color": "#dd6b20"},
        ),
        2,
        1,
    )
    for event in decisions:
        colour = _MARKS.get(event.action)
        if colour is None:
            continue
        fig.add_vline(x=event.at.isoformat(), line={"color": colour, "dash": "dash", "width": 1})
        fig.add_annotation(
            x=event.at.isoformat(),
            y=1.02,
            yref="paper",
            text=esc(event.action.removeprefix("loop.")),
            showarrow=False,
            font={"color": colour, "size": 11},
            textangle=-30,
        )
    fig.update_yaxes(range=[0, 1.05], row=2, col=1)
    return figs.html(fig, height=560)


def _gates(project: Project, model: str) -> str:
    events = [
        e
        for e in project.store.list_events(entity_type="model", entity_id=model, limit=5000)
        if e.action in ("gate.promoted", "gate.rejected")
    ]
    if not events:
        return '<p class="note">No challenger has been judged yet.</p>'
    rows = []
    for e in reversed(events):
        d = e.details
        rows.append(
            [
                f"{e.at:%Y-%m-%d %H:%M:%S}",
                f"{model}@{d.get('challenger_version')} vs @{d.get('champion_version')}",
                str(d.get("metric")),
                fmt(d.get("champion")),
                fmt(d.get("challenger")),
                fmt(d.get("delta")),
                f"[{fmt(d.get('low'))}, {fmt(d.get('high'))}]",
                str(d.get("rows")),
                "promote" if d.get("promote") else "reject",
            ]
        )
    return table(
        [
            "when",
            "versions",
            "metric",
            "champion",
            "challenger",
            "gain",
            "CI of gain",
            "rows",
            "verdict",
        ],
        rows,
    )


def render_story(project: Project, model: str, path: str | os.PathLike[str]) -> Path:
    """Write the loop's story of ``model`` (timeline, decisions and reasons, gates) to ``path``."""
    figs = Figures()
    points = story_points(project, model)
    decisions = _decisions(project, model)
    aliases = project.store.registry.history(model, "champion")
    parts = [
        section("Timeline", _timeline(figs, points, decisions)),
        section(
            "Decisions and their reasons",
            table(
                ["when", "decision", "why"],
                [
                    [f"{e.at:%H:%M:%S}", e.action.removeprefix("loop."), e.reason or ""]
                    for e in decisions
                ],
                text=(1, 2),
            )
            if decisions
            else '<p class="note">The loop has not decided anything yet.</p>',
        ),
        section("Champion/challenger gate", _gates(project, model)),
        section(
            "@champion over time",
            table(
                ["when", "from", "to", "by", "why"],
                [
                    [
                        f"{e.at:%H:%M:%S}",
                        str(e.details.get("from") or "—"),
                        str(e.details.get("to")),
                        e.actor,
                        e.reason or "",
                    ]
                    for e in aliases
                ],
                text=(4,),
            ),
        ),
    ]
    subtitle = (
        f'<p class="note">{len(points)} monitoring runs · {len(decisions)} loop decisions</p>'
    )
    out = Path(path)
    write_page(out, html_page(f"mlcycle loop — {model}", subtitle, parts))
    return out
