"""Which family of metrics a task name asks for, checked once for every entry point."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from mlcycle.errors import SpecError

__all__ = ["TASKS", "Family", "resolve_task"]

# The spec's task names, plus "classification" for callers that let the
# number of classes decide between binary and multiclass.
TASKS = ("binary", "multiclass", "classification", "regression")
Family = Literal["classification", "regression"]


def resolve_task(task: str, classes: Sequence[str] | None) -> Family:
    """Map a task name to its metric family, checking ``classes`` agrees with it."""
    if task not in TASKS:
        raise SpecError(f"task: {task!r} is not one of {', '.join(TASKS)}")
    if task == "regression":
        return "regression"
    if classes is None:
        raise SpecError(f"classes: task {task!r} needs the list of class names")
    if task == "binary" and len(classes) != 2:
        raise SpecError(f"classes: task 'binary' needs 2 class names, got {len(classes)}")
    return "classification"
