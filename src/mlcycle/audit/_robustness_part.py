"""The robustness audit as a part of ``mlcycle audit``: its run, document, gate figures and card.

The gate's figures (``loop.gate.audit`` keys ``robustness.FIGURE``), each
one value on the test split, labelled by what it is:

* ``clean``: ``{"accuracy": ...}`` on the clean test rows;
* ``ATTACK@EPS`` (``pgd@0.1``, ``fgsm@0.25``; EPS written as :func:`eps_key`
  writes it): ``{"accuracy": ...}`` under that attack at that eps;
* ``ATTACK@EPS.drop``: ``{"drop": ...}``, clean accuracy minus that;
* ``ATTACK@EPS.ood_flagged``: ``{"flagged": ...}``, the share of attacked
  rows the OOD detector flags (absent when the version has none).

So ``robustness.pgd@0.1: {min: 0.8}`` asks for at least 80% accuracy under
PGD at eps 0.1, and ``robustness.pgd@0.1.drop: {max: 0.05}`` for at most 5
points lost to it.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from mlcycle.audit._parts import Block, Part
from mlcycle.errors import SpecError

if TYPE_CHECKING:
    from mlcycle.audit._robustness import RobustnessAudit
    from mlcycle.evaluate._figures import Figures
    from mlcycle.project import Project

__all__ = ["PART"]


def _options() -> tuple[str, ...]:
    # torch comes with the attacks: imported when a robustness audit runs, not with the package
    from mlcycle.audit._robustness import robustness_audit

    return tuple(
        name
        for name, p in inspect.signature(robustness_audit).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    )


def _run(project: Project, ref: str, options: dict[str, Any]) -> RobustnessAudit:
    from mlcycle.audit._robustness import robustness_audit

    known = _options()
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise SpecError(f"robustness audit option {unknown[0]!r} is not one of {', '.join(known)}")
    return robustness_audit(project, ref, **options)


def _document(result: RobustnessAudit) -> dict[str, Any]:
    return result.to_dict()


def _figures(document: dict[str, Any]) -> dict[str, dict[str, float]]:
    figures = {"clean": {"accuracy": float(document["clean"]["accuracy"])}}
    for attack, points in document.get("attacks", {}).items():
        for key, point in points.items():
            name = f"{attack}@{key}"
            figures[name] = {"accuracy": float(point["accuracy"])}
            figures[f"{name}.drop"] = {"drop": float(point["accuracy_drop"])}
            if point.get("ood_flagged") is not None:
                figures[f"{name}.ood_flagged"] = {"flagged": float(point["ood_flagged"])}
    return figures


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _card_blocks(document: dict[str, Any]) -> list[Block]:
    clean = document["clean"]
    step = document.get("step_size")
    lines: list[Block] = [
        f"Accuracy of {document['model']} under L∞ attacks on {document['rows']} test rows of "
        f"{document['dataset']}: eps in training standard deviations per numeric column "
        "and in training pixel ranges; FGSM, and PGD with "
        f"{document['steps']} steps of {'2.5·eps/steps' if step is None else step} from a "
        f"random start (seed {document['seed']}). Categorical and boolean inputs are not "
        "attacked."
    ]
    table: list[list[str]] = [["attack", "eps", "accuracy", "drop", "OOD flagged"]]
    table.append(["none", "0", f"{clean['accuracy']:.3f}", "0", _share(clean["ood_flagged"])])
    for attack, points in document.get("attacks", {}).items():
        for key, point in points.items():
            table.append(
                [
                    attack.upper(),
                    key,
                    f"{point['accuracy']:.3f}",
                    f"{point['accuracy_drop']:.3f}",
                    _share(point.get("ood_flagged")),
                ]
            )
    lines.append(table)
    if document.get("ood") is None:
        lines.append("The version has no OOD detector: no catch rate.")
    else:
        lines.append(
            "OOD flagged: the share of rows the version's out-of-distribution detector "
            "flags; on clean rows, its false alarms."
        )
    return lines


def _sections(result: RobustnessAudit, figures: Figures) -> list[str]:
    return result.html_sections(figures)


PART = Part(
    heading="Robustness",
    run=_run,
    document=_document,
    figures=_figures,
    card_blocks=_card_blocks,
    sections=_sections,
)
