"""Explainability as a part of ``mlcycle audit``: permutation importance and a few rows explained.

The audit runs :func:`~mlcycle.audit.importance` (on the ONNX graph, test
split, bootstrap intervals) and attributes the first test rows (or
``rows``) with Integrated Gradients where the version has PyTorch weights,
SHAP's permutation explainer otherwise. The gate's figures are
``explain.importance`` (each column's importance, by column) and
``explain.completeness`` (the worst relative completeness error of the rows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlcycle.audit._explain import Explanation, explain, html_sections
from mlcycle.audit._importance import ImportanceResult, importance
from mlcycle.audit._parts import Block, Part
from mlcycle.errors import SpecError

if TYPE_CHECKING:
    from mlcycle.evaluate._figures import Figures
    from mlcycle.project import Project

__all__ = ["PART", "ExplainAudit"]

_IMPORTANCE = ("metric", "repeats", "n_boot", "alpha")
_ROWS = ("rows", "method", "baseline", "steps", "target")
CARD_COLUMNS = 10  # the most important columns the card lists


@dataclass(frozen=True)
class ExplainAudit:
    importance: ImportanceResult
    explanation: Explanation


def _run(project: Project, ref: str, options: dict[str, Any]) -> ExplainAudit:
    known = (*_IMPORTANCE, *_ROWS, "seed")
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise SpecError(f"explain audit option {unknown[0]!r} is not one of {', '.join(known)}")
    seed = int(options.get("seed", 0))
    found = importance(
        project, ref, seed=seed, **{k: v for k, v in options.items() if k in _IMPORTANCE}
    )
    rows = {k: v for k, v in options.items() if k in _ROWS}
    if "method" not in rows:
        files = project.store.registry.get(ref).files
        rows["method"] = "ig" if "weights.safetensors" in files else "shap"
    attributed = explain(project, ref, rows.pop("rows", None), seed=seed, **rows)
    return ExplainAudit(found, attributed)


def _document(result: ExplainAudit) -> dict[str, Any]:
    return {
        "importance": result.importance.to_dict(),
        "attributions": result.explanation.to_dict(),
    }


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _figures(document: dict[str, Any]) -> dict[str, dict[str, float]]:
    columns = document["importance"]["columns"]
    worst = document["attributions"].get("max_relative_completeness_error")
    return {
        "importance": {c["column"]: _number(c["importance"]) for c in columns},
        "completeness": {"max relative error": _number(worst)},
    }


def _card_blocks(document: dict[str, Any]) -> list[Block]:
    found, rows = document["importance"], document["attributions"]
    direction = "higher" if found.get("higher_is_better", True) else "lower"
    lines: list[Block] = [
        f"Permutation importance on the ONNX graph: how much the test {found['metric']} "
        f"({direction} is better) worsens when one input column is shuffled, over "
        f"{found['rows']} test rows of {found['dataset']}, {found['repeats']} shuffles, "
        f"{found.get('confidence', 0.95):.0%} bootstrap intervals."
    ]
    table: list[list[str]] = [["input", "importance", "interval"]]
    for c in found["columns"][:CARD_COLUMNS]:
        low, high = c.get("low"), c.get("high")
        interval = "-" if low is None or high is None else f"{low:.4f} to {high:.4f}"
        table.append([str(c["column"]), f"{_number(c['importance']):.4f}", interval])
    lines.append(table)
    if len(found["columns"]) > CARD_COLUMNS:
        lines.append(f"(the {CARD_COLUMNS} most important of {len(found['columns'])} inputs)")
    worst = rows.get("max_relative_completeness_error")
    lines.append(
        f"{len(rows['rows'])} test rows attributed by {rows['method']} ({rows['quantity']}); "
        + (
            f"worst relative completeness error {worst:.2g}."
            if worst is not None
            else "completeness holds by construction."
        )
    )
    return lines


def _sections(result: ExplainAudit, figures: Figures) -> list[str]:
    return [
        *html_sections(result.importance, figures),
        *html_sections(result.explanation, figures),
    ]


PART = Part(
    heading="Explainability",
    run=_run,
    document=_document,
    figures=_figures,
    card_blocks=_card_blocks,
    sections=_sections,
)
