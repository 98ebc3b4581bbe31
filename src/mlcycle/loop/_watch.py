"""The idle phase: is anything wrong with the champion?

Every tick monitors the champion's recent served rows (:func:`observe`, the
story's timeline); while the loop is idle, :func:`idle` turns what it saw
(drift, a drop in realised performance, strange inputs), the schedule and the
new labels into triggers, and starts a cycle when one fires.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlcycle.errors import NotFoundError
from mlcycle.loop._base import TriggerContext
from mlcycle.loop._state import LoopState, write_state
from mlcycle.loop._work import Work, iso, now
from mlcycle.plugins import TRIGGERS

if TYPE_CHECKING:
    from mlcycle.monitor import MonitorResult

__all__ = ["check", "idle", "observe"]


def idle(work: Work, state: LoopState) -> LoopState:
    """Check the champion; remember a healthy check (the fresh data starts after it)."""
    checked = check(work, state, work.observed)
    if checked.phase == "idle" and checked != state:
        return write_state(
            work.project.store,
            work.model,
            checked,
            action="checked",
            reason=work.steps[-1],
            actor=work.project.actor,
        )
    return checked


def observe(work: Work) -> MonitorResult | None:
    """Monitor the champion's recent served rows (every tick: the story's timeline)."""
    from mlcycle.monitor import monitor

    try:
        return monitor(
            work.project,
            work.champion().ref,
            last=work.spec.window_rows,
            recent_labels=work.spec.triggers.performance_rows,
        )
    except NotFoundError:
        return None


def check(work: Work, state: LoopState, result: MonitorResult | None) -> LoopState:
    champion = work.champion()
    at = now()
    reasons: list[str] = []
    kinds: list[str] = []
    context = TriggerContext(work.project, champion, state, result, at, work.spec)
    changed = False
    for name, setting in work.spec.triggers.settings().items():
        trigger = TRIGGERS.get(name)(setting)
        reason = trigger.fire(context)
        if reason is not None:
            reasons.append(reason)
            kinds.append(trigger.kind)
            changed = changed or trigger.changes_concept
    if not reasons:
        if result is not None:
            state = state.next(champion=champion.version, last_healthy=iso(at))
            rows = result.window.get("rows", 0)
            if result.features.drift is None:
                work.steps.append(f"no trigger; too few rows for a drift verdict ({rows})")
            else:
                work.steps.append(
                    f"healthy: {result.features.share_drifted:.0%} of inputs drifted ({rows} rows)"
                )
        else:
            work.steps.append("no served rows to check yet")
        return state
    # A change (drift, a drop, strange inputs) is fresh since the last healthy check
    # (or since the change being learnt began); more labels of the same concept are
    # fresh since the data the champion trained on.
    return work.record(
        state.next(
            phase="triggered",
            champion=champion.version,
            triggers=reasons,
            kinds=kinds,
            fresh_since=(state.concept_since or state.last_healthy)
            if changed
            else (state.data_since or state.last_retrain),
        ),
        "triggered",
        "; ".join(reasons),
    )
