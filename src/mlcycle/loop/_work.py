"""What one tick of the loop works with, shared by its phases.

:class:`Work` holds the project, the model, where the tick is (its phase and
step, for the record of an error) and a line per step taken; each phase
(:mod:`~mlcycle.loop._watch`, :mod:`~mlcycle.loop._retrain`,
:mod:`~mlcycle.loop._release`) is a function of it and the loop's state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mlcycle.loop._state import LoopState, write_state

if TYPE_CHECKING:
    from mlcycle.monitor import MonitorResult
    from mlcycle.project import Project
    from mlcycle.spec import LoopSpec
    from mlcycle.store import ModelVersionRecord

__all__ = ["CHALLENGER", "CHAMPION", "Work", "iso", "now"]

CHAMPION, CHALLENGER = "champion", "challenger"


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat()


@dataclass
class Work:
    """One tick of one model's loop."""

    project: Project
    model: str
    steps: list[str] = field(default_factory=list)
    phase: str = "idle"
    step: str = "start"  # what the tick was doing, for the record of an error
    observed: MonitorResult | None = None  # this tick's monitoring of the champion

    @property
    def spec(self) -> LoopSpec:
        return self.project.spec.loop

    def record(self, state: LoopState, action: str, reason: str) -> LoopState:
        """Write ``state`` as the loop's new state (``loop.<action>``, with why)."""
        self.steps.append(f"{action}: {reason}")
        return write_state(
            self.project.store,
            self.model,
            state,
            action=action,
            reason=reason,
            actor=self.project.actor,
        )

    def champion(self) -> ModelVersionRecord:
        return self.project.store.registry.get(f"{self.model}@{CHAMPION}")
