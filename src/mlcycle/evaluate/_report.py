"""The evaluation report: one self-contained HTML file a person can open anywhere.

The report is an artifact stored with the run and mailed around, often to
machines without internet, so everything it needs is inside the file:
plotly.js is inlined once (about 5 MB) and every figure after the first
reuses it; there is no CDN link, no external stylesheet. All text that comes
from the caller (title, class names, run facts) is escaped. Figure ids are
fixed, so the same inputs give the same bytes. The file is written to a
temporary name and renamed, so a reader never sees half a report.

Plotly is imported only when a report is rendered: computing metrics must not
pay for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mlcycle._html import esc as _esc
from mlcycle._html import fmt as _fmt
from mlcycle._html import html_page, write_page
from mlcycle._html import section as _section
from mlcycle._html import table as _table
from mlcycle.errors import DataError
from mlcycle.evaluate._bootstrap import headline_with_ci
from mlcycle.evaluate._classification import CONFUSION_MAX_CLASSES, check_classification
from mlcycle.evaluate._figures import (
    MAX_SCATTER,
    Figures,
    confusion_heatmap,
    learning_curves_plot,
    predicted_vs_actual,
    ranking_plot,
    reliability_plot,
    residual_histogram,
)
from mlcycle.evaluate._metrics import METRICS, metric_names
from mlcycle.evaluate._regression import check_regression
from mlcycle.evaluate._task import resolve_task

__all__ = ["render_report"]

# Labels of the record's fields that are not metrics; the metrics' come from the table.
_FIELDS = {
    "threshold": "Decision threshold",
    "mape_ignored": "Rows left out of MAPE (target 0)",
    "n": "Rows",
}


def _label(name: str) -> str:
    found = METRICS.get(name)
    return found.label if found is not None else _FIELDS.get(name, name)


def _classification_sections(
    figs: Figures,
    y: npt.NDArray[np.intp],
    p: npt.NDArray[np.float64],
    names: list[str],
    metrics: Mapping[str, Any],
) -> list[str]:
    cm_note = '<p class="note">Counts; the colour is the share of the true class (row).</p>'
    if metrics.get("confusion_matrix") is None and len(names) > CONFUSION_MAX_CLASSES:
        heatmap = (
            f'<p class="note">{len(names)} classes: no confusion matrix is recorded above '
            f"{CONFUSION_MAX_CLASSES} (the per-class table holds each class's counts).</p>"
        )
    else:
        matrix = np.asarray(metrics.get("confusion_matrix"), dtype=np.int64)
        if matrix.shape != (len(names), len(names)):
            raise DataError(
                f"metrics['confusion_matrix']: expected shape {(len(names),) * 2}, "
                f"got {matrix.shape}"
            )
        heatmap = confusion_heatmap(figs, matrix, names) + cm_note
    ece = _esc(_fmt(metrics.get("ece")))
    ece_note = f'<p class="note">Expected calibration error (15 bins, top-label): {ece}</p>'
    return [
        _section("Confusion matrix", heatmap),
        _section("ROC and precision-recall", ranking_plot(figs, y, p, names)),
        _section("Calibration", reliability_plot(figs, y, p, names) + ece_note),
        _section("Per class", _per_class(metrics.get("per_class", {}))),
    ]


def _regression_sections(
    figs: Figures, y: npt.NDArray[np.float64], pred: npt.NDArray[np.float64]
) -> list[str]:
    shown = (
        ""
        if y.size <= MAX_SCATTER
        else f'<p class="note">{MAX_SCATTER} of {y.size} rows shown.</p>'
    )
    return [
        _section("Predicted vs actual", predicted_vs_actual(figs, y, pred) + shown),
        _section("Residuals", residual_histogram(figs, y, pred)),
    ]


def _headline(
    headline: Mapping[str, Mapping[str, float | None]], alpha_pct: int, n_boot: int
) -> str:
    rows = [
        [
            _label(name),
            _fmt(v["value"]),
            "—" if v["low"] is None else f"[{_fmt(v['low'])}, {_fmt(v['high'])}]",
        ]
        for name, v in headline.items()
    ]
    note = (
        f'<p class="note">{alpha_pct} % intervals: percentile bootstrap over the test rows, '
        f"{n_boot} resamples.</p>"
    )
    return _table(["metric", "value", f"{alpha_pct} % CI"], rows) + note


def _other_metrics(metrics: Mapping[str, Any], headline: Sequence[str]) -> str:
    rows = [
        [
            _label(name),
            "argmax" if name == "threshold" and value is None else _fmt(value),
        ]
        for name, value in metrics.items()
        if name not in headline and (value is None or isinstance(value, int | float | str))
    ]
    return _table(["metric", "value"], rows)


def _summary(summary: Mapping[str, Any]) -> str:
    if not summary:
        return '<p class="note">No run facts were given.</p>'
    rows = "".join(
        f"<tr><th>{_esc(key)}</th><td><code>{_esc(_fmt(value))}</code></td></tr>"
        for key, value in summary.items()
    )
    return f"<table><tbody>{rows}</tbody></table>"


def _per_class(per_class: Mapping[str, Mapping[str, Any]]) -> str:
    columns = ["precision", "recall", "f1", "roc_auc", "pr_auc", "support"]
    rows = [[name] + [_fmt(stats.get(c)) for c in columns] for name, stats in per_class.items()]
    return _table(["class", *columns], rows)


def _slices(slices: Mapping[str, Mapping[str, Mapping[str, Any]]], columns: Sequence[str]) -> str:
    """One table per sliced column, its first header cell the column's name."""
    parts = []
    for column, by_value in slices.items():
        if not isinstance(by_value, Mapping) or "n" in by_value:
            raise DataError(
                f"slices: expected {{column: metrics_by_slice(...)}}, got {column!r} -> "
                "a metrics record; pass {'COLUMN': metrics_by_slice(...)}"
            )
        rows = [
            [
                key,
                _fmt(stats.get("n")),
                *(_fmt(stats.get(c)) for c in columns),
                str(stats.get("note", "")),
            ]
            for key, stats in by_value.items()
        ]
        parts.append(_table([column, "n", *columns, "note"], rows, text=(len(columns) + 2,)))
        bins = [s["bin"] for s in by_value.values() if "bin" in s]
        if bins:
            parts.append(
                f'<p class="note">{_esc(column)} is numeric: cut into {len(bins)} quantile '
                "bins of about equal row counts; [a, b) holds a but not b, the last bin "
                "holds its upper edge.</p>"
            )
    return "".join(parts)


def render_report(
    path: str | os.PathLike[str],
    *,
    title: str,
    task: str,
    classes: Sequence[str] | None,
    metrics: Mapping[str, Any],
    curves: Mapping[str, Sequence[float | None]],
    y_true: npt.ArrayLike,
    proba_or_pred: npt.ArrayLike,
    summary: Mapping[str, Any],
    slices: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> Path:
    """Write the evaluation report of one model on one held-out set as a single HTML file.

    Sections: run facts, headline metrics with bootstrap intervals, all other
    metrics, learning curves (train vs validation per metric), and for
    classification the confusion matrix, ROC and precision-recall curves
    (one-vs-rest per class for multiclass), a reliability plot and a
    per-class table; for regression predicted vs actual and the residual
    histogram; a per-slice table when ``slices`` is given. The file works
    offline: plotly.js is inlined once and nothing is fetched.

    Args:
        path: where to write the report (parent folders are created).
        title: the page title.
        task: ``binary``, ``multiclass``, ``classification`` or ``regression``.
        classes: class names in probability-column order; None for regression.
        metrics: what :func:`classification_metrics` / :func:`regression_metrics`
            returned for these rows (its ``threshold``, if any, is reused).
        curves: per-epoch series, e.g. ``{"train_loss": [...], "val_loss": [...]}``.
        y_true: class indices or regression targets.
        proba_or_pred: probabilities, shape (n, K), or regression predictions.
        summary: run facts shown at the top (run id, dataset, parameters, ...).
        slices: optional ``{column: metrics_by_slice(...)}``, one table per column.
        n_boot: bootstrap resamples for the headline intervals.
        alpha: 1 - confidence level of the intervals.
        seed: seed of the bootstrap.

    Returns:
        The path written.

    Example:
        >>> import tempfile
        >>> from mlcycle.evaluate import regression_metrics
        >>> y, pred = [1.0, 2.0, 3.0, 4.0], [1.2, 1.9, 3.1, 3.7]
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     out = render_report(
        ...         Path(tmp) / "report.html", title="demo", task="regression", classes=None,
        ...         metrics=regression_metrics(y, pred), curves={"train_loss": [0.9, 0.5]},
        ...         y_true=y, proba_or_pred=pred, summary={"run": "r1"}, n_boot=100)
        ...     "plotly.js" in out.read_text(encoding="utf-8")
        True
    """
    family = resolve_task(task, classes)
    headline = headline_with_ci(
        task,
        y_true,
        proba_or_pred,
        classes,
        n_boot=n_boot,
        alpha=alpha,
        seed=seed,
        threshold=metrics.get("threshold"),
    )
    figs = Figures()
    alpha_pct = round((1 - alpha) * 100)
    parts = [
        _section("Run", _summary(summary)),
        _section("Headline metrics", _headline(headline, alpha_pct, n_boot)),
        _section("All metrics", _other_metrics(metrics, metric_names(family, headline=True))),
        _section("Learning curves", learning_curves_plot(figs, curves)),
    ]
    if family == "classification":
        assert classes is not None  # resolve_task checked it
        y, p, names = check_classification(y_true, proba_or_pred, classes)
        n = y.size
        parts += _classification_sections(figs, y, p, names, metrics)
    else:
        target, pred = check_regression(y_true, proba_or_pred)
        n = target.size
        parts += _regression_sections(figs, target, pred)
    if slices:
        parts.append(_section("By slice", _slices(slices, metric_names(family, headline=True))))
    page = html_page(
        title,
        f'<p class="note">{_esc(task)} · {n} test rows</p>',
        parts,
    )
    out = Path(path)
    write_page(out, page)
    return out
