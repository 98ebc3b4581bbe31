"""Choosing runs by their results: ``--where "test.accuracy>0.9"`` and ``--sort METRIC``.

The store filters runs by what it indexes (experiment, status, tags,
dataset); a condition on a result is checked here, on the runs it returned.
A metric is ``test.NAME`` (the run's test metrics, in its summary) or the
name of a logged metric, whose last value (highest step) counts.

Example:
    >>> parse_where("test.accuracy >= 0.9")
    Condition(metric='test.accuracy', op='>=', value=0.9)
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlcycle.errors import SpecError
from mlcycle.store import RunRecord

if TYPE_CHECKING:
    from mlcycle.project import Project

__all__ = ["Condition", "available_metrics", "metric_values", "parse_where", "select_runs"]

# Two-character operators first, so ">=" is never read as ">" and "=0.9".
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_WHERE = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][\w.\-/]*)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>\S+)\s*$"
)
TEST_PREFIX = "test."


@dataclass(frozen=True)
class Condition:
    """``metric op value``: a run passes when its metric has a value and the comparison holds."""

    metric: str
    op: str
    value: float

    def holds(self, value: float | None) -> bool:
        return value is not None and OPERATORS[self.op](value, self.value)


def parse_where(expression: str) -> Condition:
    """Read ``METRIC OP NUMBER`` (``test.accuracy>0.9``, ``val_loss <= 0.2``).

    Raises:
        SpecError: the expression is not of that form (the message says what is allowed).
    """
    match = _WHERE.match(expression)
    allowed = ", ".join(OPERATORS)
    if match is None:
        raise SpecError(
            f"--where {expression!r}: expected METRIC OP NUMBER with OP one of {allowed}, "
            "e.g. --where 'test.accuracy>0.9'"
        )
    try:
        value = float(match["value"])
    except ValueError:
        raise SpecError(f"--where {expression!r}: {match['value']!r} is not a number") from None
    if math.isnan(value):
        raise SpecError(f"--where {expression!r}: compare with a number, not nan")
    return Condition(metric=match["metric"], op=match["op"], value=value)


def available_metrics(project: Project, runs: Sequence[RunRecord]) -> list[str]:
    """The metrics these runs can be filtered or sorted by: ``test.*`` then logged ones."""
    tests: list[str] = []
    for run in runs:
        for name in _test_metrics(run):
            if f"{TEST_PREFIX}{name}" not in tests:
                tests.append(f"{TEST_PREFIX}{name}")
    return tests + project.store.metric_keys(r.id for r in runs)


def metric_values(
    project: Project, runs: Sequence[RunRecord], metric: str
) -> dict[str, float | None]:
    """Each run's value of ``metric`` (None where the run has none)."""
    if metric.startswith(TEST_PREFIX):
        name = metric.removeprefix(TEST_PREFIX)
        return {r.id: _number(_test_metrics(r).get(name)) for r in runs}
    logged = project.store.last_metric_values((r.id for r in runs), metric)
    return {r.id: logged.get(r.id) for r in runs}


def select_runs(
    project: Project,
    runs: Sequence[RunRecord],
    *,
    where: Sequence[str] = (),
    sort: str | None = None,
    ascending: bool = False,
) -> list[RunRecord]:
    """The runs meeting every ``where`` condition, sorted by ``sort`` (runs without it last).

    Raises:
        SpecError: a malformed condition, or a metric none of the runs has
            (the message lists those they have).
    """
    conditions = [(expression, parse_where(expression)) for expression in where]
    wanted = [(f"--where {e!r}", c.metric) for e, c in conditions]
    if sort is not None:
        wanted.append((f"--sort {sort!r}", sort))
    if not wanted:
        return list(runs)
    known = available_metrics(project, runs)
    for option, metric in wanted:
        if runs and metric not in known:
            raise SpecError(
                f"{option}: unknown metric {metric!r}; these runs have "
                f"{', '.join(known) or 'no metrics'}"
            )
    chosen = list(runs)
    for _, condition in conditions:
        values = metric_values(project, chosen, condition.metric)
        chosen = [r for r in chosen if condition.holds(values[r.id])]
    if sort is not None:
        values = metric_values(project, chosen, sort)
        present = [r for r in chosen if values[r.id] is not None]
        missing = [r for r in chosen if values[r.id] is None]
        present.sort(key=lambda r: values[r.id] or 0.0, reverse=not ascending)
        chosen = present + missing
    return chosen


def _test_metrics(run: RunRecord) -> dict[str, object]:
    test = run.summary.get("test")
    return test if isinstance(test, dict) else {}


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)
