"""The fairness audit as HTML sections, for the audit report and the model card.

:func:`html_sections` returns self-contained ``<section>`` fragments (the
frame of :mod:`mlcycle._html`): a summary with the skipped facets, one
table per facet with every metric, its interval, the rows it stands on and
its definition, and a chart of the key post-training differences with their
intervals. Pass the page's :class:`~mlcycle.evaluate._figures.Figures` so
that plotly.js is inlined once per page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlcycle._html import esc, fmt, section, table
from mlcycle.audit._bias import BIAS_METRICS
from mlcycle.evaluate._figures import Figures

if TYPE_CHECKING:
    from mlcycle.audit._fairness import FairnessAudit, MetricValue

__all__ = ["CHART_METRICS", "html_sections"]

# Differences on one scale ([-1, 1], 0 is parity) that a reviewer reads first.
CHART_METRICS = ("DPPL", "RD", "SD", "AD", "DAR", "DRR")


def _interval(m: MetricValue) -> str:
    return "—" if m.low is None else f"{m.low:.4f} to {m.high:.4f}"


def html_sections(result: FairnessAudit, figures: Figures | None = None) -> list[str]:
    """The audit's sections: summary, one table per facet, the chart of differences.

    Example:
        >>> from mlcycle.audit import FairnessAudit
        >>> empty = FairnessAudit("m@1", "d@1", "binary", "yes", ("no", "yes"), ("g",), None,
        ...                       30, 0, 0.95, 0, (), ())
        >>> [s[:27] for s in html_sections(empty)]
        ['<section><h2>Fairness audit']
    """
    figs = figures or Figures()
    level = f"{result.confidence:.0%}"
    facts = [
        ("model", result.model),
        ("data", f"{result.dataset}: pre-training metrics on the train split, "
                 "post-training on the test split"),
        ("positive class", result.positive or "—"),
        ("sensitive columns", ", ".join(result.sensitive)),
        ("strata (CDDL, CDDPL)", result.strata or "none: one stratum"),
        ("intervals", f"{level} percentile bootstrap, {result.bootstrap} resamples, "
                      f"seed {result.seed}" if result.bootstrap else "none (bootstrap 0)"),
        ("smallest group audited", f"{result.min_group} rows in the test split"),
    ]  # fmt: skip
    for key, m in result.overall.items():
        facts.append((key, f"{fmt(m.value)} ({_interval(m)}), {BIAS_METRICS[key].definition}"))
    body = table(["", ""], [[k, v] for k, v in facts], text=(1,))
    if result.skipped:
        body += "<h3>Skipped facets</h3>" + table(
            ["facet", "rows of d (test)", "rows of rest (test)", "why"],
            [
                [f"{s.column}={s.value}", str(s.sizes["test_d"]), str(s.sizes["test_a"]), s.reason]
                for s in result.skipped
            ],
            text=(3,),
        )
    body += "".join(f'<p class="note">{esc(n)}</p>' for n in result.notes)
    parts = [section("Fairness audit", body)]

    for facet in result.facets:
        rows = []
        for key, m in facet.metrics.items():
            metric = BIAS_METRICS[key]
            rows.append(
                [
                    key,
                    metric.stage,
                    fmt(m.value),
                    _interval(m),
                    str(m.rows_d),
                    str(m.rows_a),
                    f"{metric.name}: {metric.definition}"
                    + (f" ({m.note})" if m.note and key != "FT" else ""),  # FT's: below
                ]
            )
        header = [
            "metric",
            "stage",
            "value",
            f"{level} interval",
            "rows d",
            "rows rest",
            "definition",
        ]
        rates = table(
            ["group (test split)", "selection rate", "accuracy", "TPR", "FPR"],
            [
                [
                    label,
                    *(
                        fmt(facet.rates[side][r])
                        for r in ("selection_rate", "accuracy", "tpr", "fpr")
                    ),
                ]
                for side, label in (("d", f"d: {facet.key}"), ("a", "a: the rest"))
            ],
        )
        note = f'<p class="note">Flip test: {esc(facet.counterfactual)}.</p>'
        parts.append(
            section(
                f"Fairness: {facet.key} vs the rest",
                table(header, rows, text=(1, 6)) + rates + note,
            )
        )

    if result.facets:
        fig = figs.go.Figure()
        for facet in result.facets:
            shown = [k for k in CHART_METRICS if k in facet.metrics]
            values = [facet.metrics[k].value for k in shown]
            high = [
                None if m.high is None or m.value is None else m.high - m.value
                for m in (facet.metrics[k] for k in shown)
            ]
            low = [
                None if m.low is None or m.value is None else m.value - m.low
                for m in (facet.metrics[k] for k in shown)
            ]
            fig.add_trace(
                figs.go.Scatter(
                    x=shown,
                    y=values,
                    mode="markers",
                    name=esc(facet.key),
                    error_y={"type": "data", "array": high, "arrayminus": low, "visible": True},
                )
            )
        fig.add_hline(y=0, line_dash="dash", line_color="#9aa5b1")
        fig.update_layout(
            title="Post-training differences of each facet from the rest (0 is parity)",
            yaxis_title="difference",
            scattermode="group",
        )
        parts.append(
            section(
                "Fairness: key differences with their intervals",
                figs.html(fig, height=420)
                + '<p class="note">DI, the ratio, is in each facet\'s table '
                "(four-fifths rule: 0.8 to 1.25).</p>",
            )
        )
    return parts
