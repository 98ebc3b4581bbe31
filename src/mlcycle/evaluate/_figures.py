"""Plotly figures of the report, each returned as an HTML fragment.

Plotly is imported when the first figure is made, not when mlcycle.evaluate
is: computing metrics must not pay for it. The first fragment carries
plotly.js inline (no CDN, so the page works offline) and the others reuse
it; figure ids are numbered, not random, so the same inputs give the same
page. Caller text that ends up inside a figure (class names, curve names) is
HTML-escaped, which plotly renders back as the literal characters.
"""

from __future__ import annotations

import html
import importlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from mlcycle.evaluate._curves import learning_curve_groups, ranking_curves, reliability, thin

__all__ = [
    "MAX_SCATTER",
    "Figures",
    "confusion_heatmap",
    "learning_curves_plot",
    "predicted_vs_actual",
    "ranking_plot",
    "reliability_plot",
    "residual_histogram",
]

MAX_SCATTER = 5000
_CONFIG = {"displaylogo": False, "responsive": True}
_COLOURS = {"train": "#1f77b4", "val": "#ff7f0e", "validation": "#ff7f0e", "valid": "#ff7f0e"}
_GREY = "#9aa5b1"


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


class Figures:
    """Turns figures into HTML fragments, inlining plotly.js with the first one only."""

    def __init__(self) -> None:
        try:
            # plotly ships no type information; its objects are Any here.
            self.go = importlib.import_module("plotly.graph_objects")
            self.make_subplots = importlib.import_module("plotly.subplots").make_subplots
        except ImportError as exc:  # pragma: no cover - plotly is installed with mlcycle
            raise ImportError("render_report needs plotly: pip install plotly") from exc
        self._count = 0

    def html(self, fig: Any, height: int = 420) -> str:
        fig.update_layout(template="plotly_white", height=height, margin={"t": 48, "b": 40})
        self._count += 1
        return str(
            fig.to_html(
                full_html=False,
                include_plotlyjs=self._count == 1,
                div_id=f"figure-{self._count}",
                config=_CONFIG,
            )
        )


def learning_curves_plot(figs: Figures, curves: Mapping[str, Sequence[float | None]]) -> str:
    groups = learning_curve_groups(curves)
    if not groups:
        return '<p class="note">No per-epoch curves were recorded for this run.</p>'
    cols = min(len(groups), 3)
    rows = math.ceil(len(groups) / cols)
    fig = figs.make_subplots(rows=rows, cols=cols, subplot_titles=[_esc(g) for g in groups])
    shown: set[str] = set()
    for i, series in enumerate(groups.values()):
        for split, values in series.items():
            fig.add_trace(
                figs.go.Scatter(
                    x=list(range(1, len(values) + 1)),
                    y=values,
                    mode="lines+markers",
                    name=_esc(split),
                    legendgroup=_esc(split),
                    showlegend=split not in shown,
                    line={"color": _COLOURS.get(split)},
                ),
                row=i // cols + 1,
                col=i % cols + 1,
            )
            shown.add(split)
    fig.update_xaxes(title_text="epoch")
    return figs.html(fig, height=340 * rows)


def confusion_heatmap(figs: Figures, matrix: npt.NDArray[np.int64], names: list[str]) -> str:
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    labels = [_esc(n) for n in names]
    fig = figs.go.Figure(
        figs.go.Heatmap(
            z=share.tolist(),
            x=labels,
            y=labels,
            text=matrix.tolist(),
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": {"text": "share of row"}},
            hovertemplate="true %{y}<br>predicted %{x}<br>%{text} rows (%{z:.1%} of row)"
            "<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="predicted", type="category")
    fig.update_yaxes(title_text="true", type="category", autorange="reversed")
    return figs.html(fig, height=max(380, 40 * len(names) + 160))


def ranking_plot(
    figs: Figures, y: npt.NDArray[np.intp], p: npt.NDArray[np.float64], names: list[str]
) -> str:
    curves = ranking_curves(y, p, names)
    if not curves:
        return '<p class="note">Undefined: the test rows hold a single class.</p>'
    fig = figs.make_subplots(
        rows=1, cols=2, subplot_titles=["ROC (one-vs-rest)", "Precision-recall"]
    )
    for c in curves:
        label = _esc(c["name"])
        fig.add_trace(
            figs.go.Scatter(
                x=c["fpr"],
                y=c["tpr"],
                mode="lines",
                legendgroup=label,
                name=f"{label} (AUC {c['roc_auc']:.3f})",
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            figs.go.Scatter(
                x=c["recall"],
                y=c["precision"],
                mode="lines",
                legendgroup=label,
                name=label,
                showlegend=False,
            ),
            row=1,
            col=2,
        )
    chance = {"mode": "lines", "line": {"dash": "dash", "color": _GREY}, "showlegend": False}
    fig.add_trace(figs.go.Scatter(x=[0, 1], y=[0, 1], name="chance", **chance), row=1, col=1)
    if len(curves) == 1:
        base = curves[0]["prevalence"]
        fig.add_trace(
            figs.go.Scatter(x=[0, 1], y=[base, base], name="chance", **chance), row=1, col=2
        )
    fig.update_xaxes(title_text="false positive rate", range=[0, 1], row=1, col=1)
    fig.update_yaxes(title_text="true positive rate", range=[0, 1.02], row=1, col=1)
    fig.update_xaxes(title_text="recall", range=[0, 1], row=1, col=2)
    fig.update_yaxes(title_text="precision", range=[0, 1.02], row=1, col=2)
    return figs.html(fig, height=440)


def reliability_plot(
    figs: Figures, y: npt.NDArray[np.intp], p: npt.NDArray[np.float64], names: list[str]
) -> str:
    data = reliability(y, p, names)
    fig = figs.make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.06
    )
    fig.add_trace(
        figs.go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name="perfectly calibrated",
            line={"dash": "dash", "color": _GREY},
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        figs.go.Scatter(
            x=data["predicted"], y=data["observed"], mode="lines+markers", name="model"
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        figs.go.Bar(
            x=data["hist_centres"],
            y=data["hist_counts"],
            name="rows",
            marker={"color": "#9fb3c8"},
            width=1 / len(data["hist_counts"]),
            showlegend=False,
        ),
        row=2,
        col=1,
    )
    fig.update_xaxes(range=[0, 1])
    fig.update_xaxes(title_text=_esc(data["label"]), row=2, col=1)
    fig.update_yaxes(title_text="observed frequency", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="rows", row=2, col=1)
    return figs.html(fig, height=520)


def predicted_vs_actual(
    figs: Figures, y: npt.NDArray[np.float64], pred: npt.NDArray[np.float64]
) -> str:
    actual, predicted = thin(y, pred, max_points=MAX_SCATTER)
    low, high = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    scatter = figs.go.Figure(
        [
            figs.go.Scatter(
                x=actual,
                y=predicted,
                mode="markers",
                name="rows",
                marker={"size": 5, "opacity": 0.6},
            ),
            figs.go.Scatter(
                x=[low, high],
                y=[low, high],
                mode="lines",
                name="predicted = actual",
                line={"dash": "dash", "color": _GREY},
            ),
        ]
    )
    scatter.update_xaxes(title_text="actual")
    scatter.update_yaxes(title_text="predicted")
    return figs.html(scatter, height=460)


def residual_histogram(
    figs: Figures, y: npt.NDArray[np.float64], pred: npt.NDArray[np.float64]
) -> str:
    counts, edges = np.histogram(y - pred, bins=50)
    residuals = figs.go.Figure(
        figs.go.Bar(
            x=((edges[:-1] + edges[1:]) / 2).tolist(),
            y=counts.tolist(),
            width=float(edges[1] - edges[0]),
            marker={"color": "#4c78a8"},
            name="rows",
        )
    )
    residuals.update_xaxes(title_text="residual (actual - predicted)")
    residuals.update_yaxes(title_text="rows")
    return figs.html(residuals, height=360)
