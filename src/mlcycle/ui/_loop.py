"""The loop page: every model the retraining loop looks after, where it stands, what it did.

The loop records its state and each decision (with the reasons) as ``loop.*``
events, each gate verdict as a ``gate.promoted`` or ``gate.rejected`` event
of the model, and moves ``@champion`` like a person would
(:mod:`mlcycle.store._rollout`, :mod:`mlcycle.loop`). This page reads the
newest of each, per model, with bounded queries; the whole story of one model
is its story page. The loop's stack (PyTorch, the gate) is never imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlcycle.store import (
    LoopState,
    Traffic,
    history,
    promotion_hold,
    read_state,
    read_traffic,
)

if TYPE_CHECKING:
    from mlcycle.project import Project
    from mlcycle.store import EventRecord

__all__ = ["CHECKED", "GATE_ACTIONS", "LoopRow", "loop_overview"]

# The loop's routine "nothing to do" tick (mlcycle.loop._watch): not a decision.
CHECKED = "loop.checked"
# The gate's verdicts, events of the model (mlcycle.loop._release).
GATE_ACTIONS = ("gate.promoted", "gate.rejected")
# Decisions are found among this many newest loop events (routine checks included);
# the loop page shows a model's newest DECISIONS and everyone's newest RECENT, a model's
# own page its newest SHOWN.
SCANNED = 500
DECISIONS = 8
RECENT = 30
SHOWN = 50


@dataclass
class LoopRow:
    """One model's loop: its state, traffic split, newest decisions, gate verdict and alias moves."""

    model: str
    state: LoopState
    traffic: Traffic
    decisions: list[EventRecord] = field(default_factory=list)
    gate: EventRecord | None = None
    champion_moves: list[EventRecord] = field(default_factory=list)
    hold: EventRecord | None = None  # a person holds the loop's promotions


def loop_overview(project: Project) -> dict[str, Any]:
    """Every registered model with a loop (and the names of those without), newest events."""
    store = project.store
    rows: list[LoopRow] = []
    without: list[str] = []
    for model in store.registry.list_models():
        events = history(store, model.name, limit=SCANNED)
        if not events:
            without.append(model.name)
            continue
        gates = [
            e
            for action in GATE_ACTIONS
            for e in store.list_events(
                entity_type="model", entity_id=model.name, action=action, limit=1
            )
        ]
        moves = store.list_events(
            entity_type="model", entity_id=model.name, action="alias.moved", limit=20
        )
        rows.append(
            LoopRow(
                model=model.name,
                state=read_state(store, model.name),
                traffic=read_traffic(store, model.name),
                decisions=[e for e in events if e.action != CHECKED][:DECISIONS],
                gate=max(gates, key=lambda e: e.id) if gates else None,
                champion_moves=[e for e in moves if e.details.get("alias") == "champion"][:3],
                hold=promotion_hold(store, model.name),
            )
        )
    recent = [
        e for e in store.list_events(entity_type="loop", limit=SCANNED) if e.action != CHECKED
    ]
    return {"loops": rows, "without": without, "recent": recent[:RECENT]}
