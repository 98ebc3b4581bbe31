"""The fairness audit as a part of ``mlcycle audit``: its run, document, gate figures and card.

The gate's figures are ``fairness.KEY`` for every metric key of
:data:`~mlcycle.audit._bias.BIAS_METRICS`, each with one value per audited
facet labelled ``column=value`` (``fairness.DI``: ``{"afam=yes": 0.62,
"afam=no": 1.6, ...}``), and ``fairness.GE`` with the one value ``all rows``.
An undefined value is NaN, which no limit accepts.
"""

from __future__ import annotations

import inspect
import math
from typing import TYPE_CHECKING, Any

from mlcycle.audit._bias import BIAS_METRICS
from mlcycle.audit._fairness import FairnessAudit, fairness_audit
from mlcycle.audit._fairness_html import html_sections
from mlcycle.audit._parts import Block, Part
from mlcycle.errors import SpecError

if TYPE_CHECKING:
    from mlcycle.evaluate._figures import Figures
    from mlcycle.project import Project

__all__ = ["CARD_METRICS", "PART"]

# The card's table: the ratio a reviewer checks first, then the main differences.
CARD_METRICS = ("DI", "DPPL", "RD", "SD", "AD", "DPL", "FT")
_OPTIONS = tuple(
    name
    for name, p in inspect.signature(fairness_audit).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY
)


def _run(project: Project, ref: str, options: dict[str, Any]) -> FairnessAudit:
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise SpecError(f"fairness audit option {unknown[0]!r} is not one of {', '.join(_OPTIONS)}")
    return fairness_audit(project, ref, **options)


def _document(result: FairnessAudit) -> dict[str, Any]:
    return result.to_dict()


def _figures(document: dict[str, Any]) -> dict[str, dict[str, float]]:
    figures: dict[str, dict[str, float]] = {}
    for facet in document.get("facets", []):
        label = f"{facet['column']}={facet['value']}"
        for key, metric in facet["metrics"].items():
            value = metric["value"]
            figures.setdefault(key, {})[label] = math.nan if value is None else float(value)
    for key, metric in document.get("overall", {}).items():
        value = metric["value"]
        figures[key] = {"all rows": math.nan if value is None else float(value)}
    return figures


def _shown(metric: dict[str, Any] | None) -> str:
    if metric is None:
        return "-"
    if metric["value"] is None:
        return "undefined"
    interval = metric.get("interval")
    value = f"{metric['value']:.3f}"
    return f"{value} ({interval[0]:.3f} to {interval[1]:.3f})" if interval else value


def _card_blocks(document: dict[str, Any]) -> list[Block]:
    facets = document.get("facets", [])
    skipped = document.get("skipped", [])
    level = f"{document.get('confidence', 0.95):.0%}"
    lines: list[Block] = [
        f"Bias of {document['model']} by {', '.join(document['sensitive'])} on "
        f"{document['dataset']} (pre-training metrics on the train split, post-training on "
        f"the test split; positive class {document.get('positive')!r}): {len(facets)} "
        f"facets audited against the rest, with {level} bootstrap intervals."
    ]
    if facets:
        shown = [k for k in CARD_METRICS if k in facets[0]["metrics"]]
        table: list[list[str]] = [["facet", "rows d / rest (test)", *shown]]
        for facet in facets:
            sizes = facet["group_sizes"]
            table.append(
                [
                    f"{facet['column']}={facet['value']}",
                    f"{sizes['test_d']} / {sizes['test_a']}",
                    *(_shown(facet["metrics"].get(k)) for k in shown),
                ]
            )
        lines.append(table)
        lines.append("; ".join(f"{k}: {BIAS_METRICS[k].definition}" for k in shown) + ".")
    if skipped:
        lines.append(
            "Skipped: "
            + "; ".join(f"{s['column']}={s['value']} ({s['reason']})" for s in skipped)
            + "."
        )
    lines += list(document.get("notes", []))
    return lines


def _sections(result: FairnessAudit, figures: Figures) -> list[str]:
    return html_sections(result, figures)


PART = Part(
    heading="Fairness",
    run=_run,
    document=_document,
    figures=_figures,
    card_blocks=_card_blocks,
    sections=_sections,
)
