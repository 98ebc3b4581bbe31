"""The compression report: every variant against the original, on one offline page.

Accuracy (with its bootstrap interval) against latency at the deployment
batch size, marker size by graph size; a table with every figure, the
chosen variant marked and each rejected one with its reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mlcycle._html import esc, fmt, html_page, section, table, write_page
from mlcycle.evaluate._figures import Figures

if TYPE_CHECKING:
    from mlcycle.compress._compress import CompressionResult
    from mlcycle.project import Project

__all__ = ["write_report"]

_COLOURS = {
    "original": "#52606d",
    "chosen": "#1f9d55",
    "kept": "#2f80ed",
    "rejected": "#d64545",
    "reported": "#f0a020",
}


def write_report(project: Project, result: CompressionResult) -> Path:
    figs = Figures()
    go = figs.go
    batch, name = result.batch, result.metric
    measured = [v for v in result.variants if v.error is None and batch in v.latency_ms]
    fig = go.Figure()
    for v in measured:
        ci = v.test_ci.get(name) or {}
        value = v.test.get(name)
        low, high = ci.get("low"), ci.get("high")
        error_y = (
            {
                "type": "data",
                "symmetric": False,
                "array": [high - value],
                "arrayminus": [value - low],
            }
            if value is not None and low is not None and high is not None
            else None
        )
        fig.add_trace(
            go.Scatter(
                x=[v.latency_ms[batch]],
                y=[value],
                error_y=error_y,
                mode="markers+text",
                text=[v.method],
                textposition="top center",
                name=f"{v.method} ({v.verdict})",
                marker={
                    "size": 10 + 30 * (v.size_bytes / max(measured[0].size_bytes, 1)) ** 0.5,
                    "color": _COLOURS.get(v.verdict, "#888"),
                },
            )
        )
    fig.update_layout(
        xaxis_title=f"latency at batch {batch} (ms, median)",
        yaxis_title=f"test {name}",
        xaxis_type="log",
    )
    rows = []
    original = result.variants[0]
    for v in result.variants:
        speed = (
            original.latency_ms[batch] / v.latency_ms[batch]
            if batch in v.latency_ms and batch in original.latency_ms
            else None
        )
        ci = v.test_ci.get(name) or {}
        rows.append(
            [
                esc(v.method),
                esc(v.verdict),
                fmt(v.test.get(name))
                + (f" [{fmt(ci.get('low'))}, {fmt(ci.get('high'))}]" if ci else ""),
                f"{v.size_bytes:,}" if v.size_bytes else "—",
                fmt(v.latency_ms.get(1)),
                fmt(v.latency_ms.get(batch)),
                "—" if speed is None else f"{speed:.2f}x",
                fmt(v.agreement.get("label_agreement")),
                esc(v.version or ""),
                esc(v.reason or v.error or ""),
            ]
        )
    parts = [
        section(
            "Variants",
            table(
                [
                    "variant",
                    "verdict",
                    f"test {name} [95% CI]",
                    "size (bytes)",
                    "ms at batch 1",
                    f"ms at batch {batch}",
                    f"speed-up at {batch}",
                    "labels as original",
                    "version",
                    "why",
                ],
                rows,
                text=(1, 2, 8, 9),
            )
            + '<p class="note">Measured on this machine in one run, every variant on the same '
            "ONNX Runtime threads, interleaved; a variant is kept only when faster than the "
            f"original at batch {batch} and within {result.max_drop} points of its {name}.</p>",
        ),
        section(f"{name} against latency (marker size: graph size)", figs.html(fig, 480)),
    ]
    when = datetime.now(UTC)
    path = (
        project.root
        / ".mlcycle"
        / "reports"
        / f"compress-{result.model.replace('@', '-')}-{when:%Y%m%d-%H%M%S}.html"
    )
    chosen = f"chosen: {result.chosen}" if result.chosen else "no variant kept"
    subtitle = f'<p class="note">{esc(result.model)} · batch {batch} · {esc(chosen)}</p>'
    write_page(path, html_page(f"mlcycle compress {result.model}", subtitle, parts))
    return path
