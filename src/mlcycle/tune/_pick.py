"""Choose one point of a Pareto front by a constraint: ``latency_ms where accuracy>=0.97``.

The expression names the objective to optimise (in its direction) and,
after ``where``, conditions on the others joined by ``and`` or commas; the
fastest model whose validation accuracy is at least 0.97 is
``latency_ms where accuracy>=0.97``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mlcycle.errors import NotFoundError, SpecError

if TYPE_CHECKING:
    from mlcycle.tune._study import StudySummary

__all__ = ["parse_pick", "pick_trial"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*$")


def parse_pick(text: str, objectives: list[str]) -> tuple[str, list[tuple[str, str, float]]]:
    """``(objective, [(name, op, value), ...])`` of a pick expression.

    >>> parse_pick("latency_ms where accuracy>=0.97", ["accuracy", "latency_ms"])
    ('latency_ms', [('accuracy', '>=', 0.97)])

    Raises:
        SpecError: the expression is malformed or names no objective of the study.
    """
    head, _, rest = text.partition(" where ")
    by = head.strip()
    where = "--pick"
    if by not in objectives:
        raise SpecError(
            f"{where} {text!r}: {by!r} is not an objective of the study "
            f"({', '.join(objectives)}); e.g. 'latency_ms where accuracy>=0.97'"
        )
    conditions = []
    for part in re.split(r",|\band\b", rest) if rest.strip() else []:
        match = _CONDITION.match(part)
        if match is None:
            raise SpecError(
                f"{where} {text!r}: cannot read the condition {part.strip()!r}; "
                "write NAME>=VALUE (or <=, >, <)"
            )
        name, op, value = match.group(1), match.group(2), match.group(3)
        if name not in objectives:
            raise SpecError(
                f"{where} {text!r}: {name!r} is not an objective of the study "
                f"({', '.join(objectives)})"
            )
        try:
            conditions.append((name, op, float(value)))
        except ValueError:
            raise SpecError(f"{where} {text!r}: {value!r} is not a number") from None
    return by, conditions


def pick_trial(summary: StudySummary, text: str) -> dict[str, Any]:
    """The point of the study's front (or its best trial) that ``text`` asks for.

    Raises:
        SpecError: a malformed expression.
        NotFoundError: no point meets the conditions (the message shows the front).
    """
    names = [o["name"] for o in summary.objectives]
    by, conditions = parse_pick(text, names)
    points = summary.pareto or ([summary.best] if summary.best else [])
    ok = [
        p
        for p in points
        if all(_OPS[op](p["values"][name], value) for name, op, value in conditions)
    ]
    if not ok:
        shown = "; ".join(
            ", ".join(f"{n} {p['values'][n]:.4g}" for n in names) for p in points[:10]
        )
        raise NotFoundError(
            f"--pick {text!r}: no point of the front meets it (front: {shown or 'empty'})"
        )
    direction = next(o["direction"] for o in summary.objectives if o["name"] == by)
    choose = max if direction == "maximize" else min
    return dict(choose(ok, key=lambda p: p["values"][by]))
