"""The plugin boundary of the loop: a :class:`Trigger` decides when to retrain.

Each tick in ``idle`` asks every trigger that ``loop.triggers`` turns on
whether it fires, given a :class:`TriggerContext` (the champion, the loop's
state and the monitoring result of its recent served rows). A trigger that
fires gives its reason; the loop records the reasons and moves to
``triggered``. Triggers are registered by name in
:data:`mlcycle.plugins.TRIGGERS`; the name is the key in ``loop.triggers``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from mlcycle.errors import NotFoundError

if TYPE_CHECKING:
    from mlcycle.loop._state import LoopState
    from mlcycle.monitor import MonitorResult
    from mlcycle.project import Project
    from mlcycle.spec import LoopSpec
    from mlcycle.store import ModelVersionRecord

__all__ = ["Trigger", "TriggerContext"]


@dataclass
class TriggerContext:
    """What a trigger may look at, computed once per tick and shared by the triggers.

    Attributes:
        project: the project.
        champion: the version the loop looks after.
        state: the loop's state as the tick found it.
        result: the monitoring of the champion's recent served rows (None: no rows yet).
        now: the tick's time.
        spec: the loop's spec (``spec.triggers`` holds every trigger's setting).
    """

    project: Project
    champion: ModelVersionRecord
    state: LoopState
    result: MonitorResult | None
    now: datetime
    spec: LoopSpec

    def labelled_since(self, since: datetime | None) -> int:
        """Labelled rows the champion answered since ``since`` (all of them for None)."""
        from mlcycle.loop._data import labelled_rows

        return int(labelled_rows(self.project, self.champion, since=since).num_rows)

    @cached_property
    def new_labels(self) -> int:
        """Labelled rows since the last retraining (read once, whichever triggers ask)."""
        last = self.state.last_retrain
        return self.labelled_since(datetime.fromisoformat(last) if last else None)

    @cached_property
    def trained_rows(self) -> int:
        """Rows of the dataset the champion was trained on (0 when unknown)."""
        ref = self.champion.lineage.get("dataset")
        if not ref:
            return 0
        try:
            return int(self.project.datasets.get(str(ref)).n_rows)
        except NotFoundError:
            return 0


class Trigger(ABC):
    """One reason to retrain, turned on by its setting in ``loop.triggers``.

    Subclasses set :attr:`kind` (recorded in the loop's state; the ``auto``
    retraining data reads it) and :attr:`changes_concept`, and implement
    :meth:`fire`. The constructor takes the setting (``True``, a number, a
    duration: whatever the trigger's key holds in ``loop.triggers``).

    Example:
        >>> class Always(Trigger):
        ...     kind = "always"
        ...     def fire(self, context):
        ...         return f"always (setting {self.setting})"
        >>> Always(1).fire(None)
        'always (setting 1)'
    """

    kind: ClassVar[str]
    #: True when firing means the data changed (drift, a drop): the fresh rows
    #: a challenger learns from then start at the last healthy check, not at
    #: the last retraining.
    changes_concept: ClassVar[bool] = False

    def __init__(self, setting: Any) -> None:
        self.setting = setting

    @abstractmethod
    def fire(self, context: TriggerContext) -> str | None:
        """Why the loop should retrain now (one line), or None."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.setting!r})"
