"""The monitoring report as one self-contained HTML page, drawn from the stored JSON report.

Sections: the verdict, the window (its size and sources) and alerts; data
quality; the timeline of drift, performance
(realised and estimated), out-of-distribution share and fairness across the
window's slices; performance with its interval beside the CBPE estimate and
its assumptions; the drift table of every column; reference and current
distributions per feature (drifted first); prediction and target drift;
fairness per group; out-of-distribution inputs. The page is a pure function
of the JSON (:func:`render_monitor_report`), so any stored report can be
drawn again. plotly.js is inlined once; nothing is fetched.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlcycle._html import esc, fmt, html_page, section, table, write_page
from mlcycle.evaluate._figures import Figures

__all__ = ["render_monitor_report"]

_MAX_DISTRIBUTIONS = 30
_REFERENCE = "#1f77b4"
_CURRENT = "#d62728"


def _verdict(report: Mapping[str, Any]) -> str:
    alerts = report.get("alerts", [])
    if not alerts:
        return '<p><strong style="color:#2f855a">Healthy</strong>: no alert.</p>'
    items = "".join(f"<li>{esc(a['message'])}</li>" for a in alerts)
    return f'<p><strong style="color:#c53030">{len(alerts)} alert(s)</strong></p><ul>{items}</ul>'


def _window(window: Mapping[str, Any]) -> str:
    sources = window.get("log_sources")
    where = esc(window.get("source", "")) + (f" ({esc(', '.join(sources))})" if sources else "")
    return (
        f"<p>Window: <strong>{esc(window.get('rows', 0))} rows</strong>, "
        f"{esc(window.get('labelled', 0))} labelled, from {where}.</p>"
    )


def _timeline(figs: Figures, rows: Sequence[Mapping[str, Any]], reference: float | None) -> str:
    if len(rows) < 2:
        return '<p class="note">The window is too small to cut into slices.</p>'
    x = [r.get("end") or f"slice {r['window'] + 1}" for r in rows]
    dpd = sorted({k for r in rows for k in r if k.startswith("dpd:")})
    has_ood = any(r.get("ood_share") is not None for r in rows)
    panels = ["share of inputs drifted", f"{rows[0]['metric']}: realised and estimated"]
    panels += ["out-of-distribution share"] if has_ood else []
    panels += [f"demographic parity difference ({d[4:]}), with its interval" for d in dpd]
    fig = figs.make_subplots(rows=len(panels), cols=1, subplot_titles=panels, shared_xaxes=True)
    go = figs.go
    fig.add_trace(go.Scatter(x=x, y=[r["share_drifted"] for r in rows], name="drifted share"), 1, 1)
    fig.add_trace(go.Scatter(x=x, y=[r["realised"] for r in rows], name="realised"), 2, 1)
    fig.add_trace(
        go.Scatter(
            x=x, y=[r["estimated"] for r in rows], name="estimated (CBPE)", line={"dash": "dot"}
        ),
        2,
        1,
    )
    if reference is not None:
        fig.add_trace(
            go.Scatter(x=x, y=[reference] * len(x), name="reference", line={"color": "#9aa5b1"}),
            2,
            1,
        )
    if has_ood:
        fig.add_trace(go.Scatter(x=x, y=[r["ood_share"] for r in rows], name="OOD share"), 3, 1)
    first = 4 if has_ood else 3
    for i, key in enumerate(dpd):
        values = [r.get(key) for r in rows]
        bounds = [r.get(f"dpd_interval:{key[4:]}") for r in rows]
        fig.add_trace(
            go.Scatter(x=x, y=values, name=esc(key[4:]), error_y=_error_bars(values, bounds)),
            first + i,
            1,
        )
    return figs.html(fig, height=230 * len(panels) + 80)


def _error_bars(values: Sequence[float | None], bounds: Sequence[Any]) -> dict[str, Any]:
    """Plotly's asymmetric error bars from a ``[low, high]`` per point (none where unknown)."""
    up: list[float | None] = []
    down: list[float | None] = []
    for value, bound in zip(values, bounds, strict=True):
        known = value is not None and bound is not None
        # A percentile interval of a range can sit wholly above a value near zero: no bar below.
        up.append(max(bound[1] - value, 0.0) if known else None)
        down.append(max(value - bound[0], 0.0) if known else None)
    return {"type": "data", "symmetric": False, "array": up, "arrayminus": down}


def _performance(report: Mapping[str, Any]) -> str:
    parts = []
    perf = report.get("performance")
    reference = report.get("reference_metrics", {})
    if perf:
        low, high = perf.get("low"), perf.get("high")
        interval = "—" if low is None else f"[{fmt(low)}, {fmt(high)}]"
        parts.append(
            table(
                ["metric", "window", "95 % CI", "reference", "drop", "labelled rows", "verdict"],
                [
                    [
                        str(perf.get("metric")),
                        fmt(perf.get("value")),
                        interval,
                        fmt(perf.get("reference")),
                        fmt(perf.get("drop")),
                        fmt(perf.get("n")),
                        "alert" if perf.get("alert") else (perf.get("reason") or "ok"),
                    ]
                ],
            )
        )
    else:
        parts.append('<p class="note">No labels have arrived for this window yet.</p>')
    estimated = report.get("estimated")
    if estimated:
        realised = (perf or {}).get("metrics", {})
        rows = [
            [
                name,
                fmt(e["value"]),
                f"[{fmt(e['low'])}, {fmt(e['high'])}]",
                fmt((realised.get(name) or {}).get("value")),
                fmt(reference.get(name)),
            ]
            for name, e in estimated.items()
        ]
        parts.append("<h3>Estimated without labels (CBPE) beside realised</h3>")
        parts.append(table(["metric", "estimated", "interval", "realised", "reference"], rows))
        parts.append(f'<p class="note">{esc(report.get("estimated_assumptions") or "")}</p>')
    return "".join(parts)


def _drift(value: bool | None) -> str:
    return "no verdict" if value is None else ("DRIFT" if value else "no")


def _drift_table(columns: Sequence[Mapping[str, Any]], correction: str | None = None) -> str:
    adjusted = "adjusted p" if not correction else f"adjusted p ({correction})"
    rows = [
        [
            c["column"],
            c["type"],
            c["test"],
            fmt(c["statistic"]),
            fmt(c.get("p_value")),
            fmt(c.get("adjusted_p_value")),
            fmt(c["threshold"]),
            fmt(c.get("rows")),
            _drift(c["drift"]),
        ]
        for c in sorted(columns, key=lambda c: (not c["drift"], c["column"]))
    ]
    head = ["column", "type", "test", "statistic", "p-value", adjusted, "threshold", "rows"]
    return table([*head, "drift"], rows)


def _quality(report: Mapping[str, Any]) -> str:
    quality = report.get("data_quality") or {}
    rows = [[name, "absent from the data"] for name in quality.get("absent", [])]
    rows += [
        [name, "no value in any row"]
        for name in quality.get("empty", [])
        if name not in quality.get("absent", [])
    ]
    rows += [
        [name, f"{count} rows not finite numbers"]
        for name, count in (quality.get("non_finite") or {}).items()
    ]
    if quality.get("unusable_labels"):
        examples = ", ".join(quality.get("label_examples", []))
        rows.append(["labels", f"{quality['unusable_labels']} not among the classes ({examples})"])
    if not rows:
        return '<p class="note">Every input has values; every value and answer is a number.</p>'
    excluded = quality.get("excluded_rows", 0)
    note = (
        f'<p class="note">{excluded} rows with unusable outputs are left out of prediction '
        "drift, performance, the estimate and fairness; infinite inputs count as missing.</p>"
    )
    return table(["column", "finding"], rows) + note


def _attribution(figs: Figures, found: Mapping[str, Any]) -> str:
    """Each input's mean |attribution| on both sides, in the reference's order, and the nDCG."""
    reference, current = found["reference"], found["current"]
    names = sorted(reference, key=lambda n: -reference[n])[:30]
    go = figs.go
    fig = go.Figure(
        [
            go.Bar(y=names, x=[reference[n] for n in names], name="reference", orientation="h"),
            go.Bar(
                y=names, x=[current.get(n, 0.0) for n in names], name="current", orientation="h"
            ),
        ]
    )
    fig.update_layout(
        barmode="group",
        xaxis_title="mean |attribution| (baseline Shapley)",
        yaxis={"autorange": "reversed"},
    )
    ndcg = found.get("ndcg")
    verdict = (
        "no verdict (too few rows)"
        if ndcg is None
        else f"nDCG {ndcg:.3f} against the limit {found['min_ndcg']}: "
        + ("the model leans on other inputs now" if found.get("alert") else "the same ranking")
    )
    rows = found.get("rows", {})
    note = (
        f'<p class="note">{esc(verdict)}; {esc(rows.get("reference"))} reference and '
        f"{esc(rows.get('current'))} current rows, {esc(found.get('permutations'))} "
        "permutations each.</p>"
    )
    return figs.html(fig, height=120 + 26 * len(names)) + note


def _distributions(figs: Figures, histograms: Mapping[str, Mapping[str, Any]]) -> str:
    names = list(histograms)[:_MAX_DISTRIBUTIONS]
    if not names:
        return '<p class="note">No tabular inputs to draw.</p>'
    cols = 3
    rows = math.ceil(len(names) / cols)
    fig = figs.make_subplots(rows=rows, cols=cols, subplot_titles=[esc(n) for n in names])
    go = figs.go
    for i, name in enumerate(names):
        h = histograms[name]
        ref_total = max(sum(h["reference"]), 1)
        cur_total = max(sum(h["current"]), 1)
        if h["type"] == "numeric":
            edges = h["edges"]
            x = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
        else:
            x = [esc(c) for c in h["categories"]]
        for side, colour, total in (
            ("reference", _REFERENCE, ref_total),
            ("current", _CURRENT, cur_total),
        ):
            fig.add_trace(
                go.Bar(
                    x=x,
                    y=[v / total for v in h[side]],
                    name=side,
                    legendgroup=side,
                    showlegend=i == 0,
                    marker={"color": colour},
                    opacity=0.55,
                ),
                row=i // cols + 1,
                col=i % cols + 1,
            )
    fig.update_layout(barmode="overlay", bargap=0.02)
    note = (
        f'<p class="note">Showing {len(names)} of {len(histograms)} columns, drifted first; '
        "bars are shares of each side's rows.</p>"
    )
    return figs.html(fig, height=230 * rows + 60) + note


def _interval(low: Any, high: Any) -> str:
    return "—" if low is None or high is None else f"{low:.3f} to {high:.3f}"


def _difference(name: str, value: float | None, check: Mapping[str, Any] | None) -> list[str]:
    """One row of a column's differences: the figure, its interval, the reference and verdict."""
    if value is None:
        return [name, "—", "—", "—", "—", "not computed: see the notes below"]
    if check is None:  # a report stored before differences had intervals
        return [name, f"{value:.3f}", "—", "—", "—", "—"]
    reference = check.get("reference")
    return [
        name,
        f"{value:.3f}",
        f"{check['confidence']:.0%}: {_interval(check['low'], check['high'])}",
        "—"
        if reference is None
        else f"{reference:.3f} ({_interval(check['reference_low'], check['reference_high'])})",
        str(check["rule"]),
        f"{'ALERT: ' if check['alert'] else ''}{check['reason']}",
    ]


def _fairness(fairness: Mapping[str, Mapping[str, Any]]) -> str:
    parts = []
    for column, result in fairness.items():
        excluded = set(result.get("excluded", []))
        rows = [
            [
                str(g.get("group")),
                fmt(g.get("rows")),
                fmt(g.get("selection_rate")),
                fmt(g.get("tpr")),
                fmt(g.get("fpr")),
                fmt(g.get("accuracy")),
                "left out: see the notes" if g.get("group") in excluded else "",
            ]
            for g in result.get("groups", [])
        ]
        parts.append(f"<h3>{esc(column)}</h3>")
        parts.append(
            table(["group", "rows", "selection rate", "TPR", "FPR", "accuracy", ""], rows, text=[6])
        )
        checks = result.get("checks") or {}
        differences = [
            _difference(name, result.get(key), checks.get(key))
            for key, name in (
                ("demographic_parity_difference", "demographic parity difference"),
                ("equalized_odds_difference", "equalised odds difference"),
            )
        ]
        parts.append(
            table(
                ["difference", "window", "interval", "reference (interval)", "rule", "verdict"],
                differences,
                text=[4, 5],
            )
        )
        if result.get("notes"):
            items = "".join(f"<li>{esc(n)}</li>" for n in result["notes"])
            parts.append(f'<ul class="note">{items}</ul>')
    return "".join(parts) or '<p class="note">No sensitive column is configured.</p>'


def render_monitor_report(report: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write the HTML page of a stored monitoring report (what :func:`monitor` returns as ``report``).

    Returns:
        The path written (atomically).
    """
    figs = Figures()
    window = report.get("window", {})
    reference_metrics = report.get("reference_metrics", {})
    timeline = report.get("timeline", [])
    metric = timeline[0]["metric"] if timeline else "accuracy"
    prediction = (report.get("prediction") or {}).get("columns", [])
    target = report.get("target")
    dataset = report["features"]["dataset"]
    correction = {"benjamini-hochberg": "Benjamini-Hochberg", "bonferroni": "Bonferroni"}.get(
        dataset.get("multiple_testing", "")
    )
    share = f"{dataset['share_drifted']:.0%} of inputs drifted"
    if dataset.get("drift") is None:
        share += " (no verdict: too few rows)"
    parts = [
        section("Verdict", _verdict(report) + _window(window)),
        section("Data quality", _quality(report)),
        section(
            "Across the window",
            _timeline(figs, timeline, reference_metrics.get(metric)),
        ),
        section("Performance", _performance(report)),
        section(f"Feature drift: {share}", _drift_table(report["features"]["columns"], correction)),
        section(
            "Distributions: reference vs current",
            _distributions(figs, report.get("histograms", {})),
        ),
        section(
            "Prediction and target drift",
            _drift_table(prediction + ([] if not target else target["columns"]), correction),
        ),
        section("Fairness", _fairness(report.get("fairness", {}))),
    ]
    ood = report.get("ood")
    if ood:
        parts.append(
            section(
                "Out-of-distribution inputs",
                table(
                    ["rows", "flagged", "share", "outside training ranges", "limit", "scored"],
                    [
                        [
                            fmt(ood["rows"])
                            + (
                                f" (no verdict below {ood.get('min_rows')})"
                                if ood.get("alert") is None
                                else ""
                            ),
                            fmt(ood["flagged"]),
                            f"{ood['share']:.2%}",
                            "—"
                            if ood.get("out_of_range_share") is None
                            else f"{ood['out_of_range_share']:.2%}",
                            f"{ood['max_share']:.2%}",
                            str(ood.get("source")),
                        ]
                    ],
                ),
            )
        )
    attribution = report.get("attribution")
    if attribution and not attribution.get("skipped"):
        parts.append(section("Attribution drift", _attribution(figs, attribution)))
    if report.get("notes"):
        items = "".join(f"<li>{esc(n)}</li>" for n in report["notes"])
        parts.append(section("Notes", f"<ul>{items}</ul>"))
    subtitle = (
        f'<p class="note">{esc(report.get("at", ""))} · {esc(window.get("source", ""))} · '
        f"{esc(window.get('rows', 0))} rows, {esc(window.get('labelled', 0))} labelled</p>"
    )
    out = Path(path)
    write_page(out, html_page(f"mlcycle monitor — {report.get('model', '')}", subtitle, parts))
    return out
