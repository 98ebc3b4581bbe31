"""Judging and releasing a challenger: the gating and rollout phases.

:func:`judge` (``gating``) compares challenger and champion on the same fresh
held-out rows; a challenger that passes goes out in shadow and canary steps
(:func:`bake`, ``rollout``), each judged on live figures, and is promoted
(``@champion`` moves, servers hot-swap) or rolled back. Either way the cycle
ends (:func:`finished`) and the loop is idle again.
"""

from __future__ import annotations

import math
from datetime import datetime

from mlcycle.loop._gate import gate
from mlcycle.loop._judge import audited
from mlcycle.loop._rollout import Traffic, judge_step, live_figures, set_traffic
from mlcycle.loop._state import LoopState
from mlcycle.loop._work import CHALLENGER, CHAMPION, Work, iso, now
from mlcycle.store import promotion_hold

__all__ = ["bake", "finished", "judge", "promote"]

MAX_MISSES = 2  # challengers in a row no better than the champion end "keep improving"


def held(work: Work, state: LoopState, what: str) -> LoopState | None:
    """The state to wait in while a person holds the loop's promotions, else ``None``.

    The hold is recorded as a decision once (the state remembers which hold
    it noted); later ticks wait without a word until it is released.
    """
    hold = promotion_hold(work.project.store, work.model)
    if hold is None:
        return None
    stamp = hold.at.isoformat()
    if state.held == stamp:
        work.steps.append(f"promotions held by {hold.actor}: waiting")
        return state
    return work.record(
        state.next(held=stamp),
        "held",
        f"{work.model}@{state.challenger} {what}: promotions held by {hold.actor} "
        f"({hold.reason}); `mlcycle loop release` lets it go on",
    )


def judge(work: Work, state: LoopState) -> LoopState:
    from mlcycle.registry import load

    assert state.data is not None and state.challenger is not None
    waiting = held(work, state, "waits before the gate")
    if waiting is not None:
        return waiting
    champion = work.champion()
    holdout = work.project.datasets.load(state.data["holdout_ref"])
    monitor_spec = work.project.spec.monitor
    verdict = gate(
        load(champion.ref, project=work.project),
        load(f"{work.model}@{state.challenger}", project=work.project),
        holdout,
        target=str(champion.signature.get("target")),
        spec=work.spec.gate,
        sensitive=monitor_spec.fairness.sensitive,
        positive_label=monitor_spec.fairness.positive_label,
        seed=state.cycle,
    )
    verdict = audited(work.project, f"{work.model}@{state.challenger}", verdict, work.spec.gate)
    details = verdict.to_dict()
    reason = "; ".join(verdict.reasons)
    work.project.store.record_event(
        "gate.promoted" if verdict.promote else "gate.rejected",
        "model",
        work.model,
        actor=work.project.actor,
        reason=reason,
        details={
            "challenger_version": state.challenger,
            "champion_version": champion.version,
            **details,
        },
    )
    if not verdict.promote:
        # Two challengers in a row, each trained on more rows, no better than the
        # champion end the "keep improving" streak (one may be the noise of a
        # training run); one better by min_delta but not yet significant only
        # waits for more held-out rows.
        misses = state.misses + (0 if verdict.improved else 1)
        ended = finished(
            work, state, champion.version, improving=state.improving and misses < MAX_MISSES
        )
        return work.record(
            ended.next(misses=misses if ended.improving else 0),
            "rejected",
            f"{work.model}@{state.challenger} stays registered, not promoted: {reason}",
        )
    state = state.next(gate=details)
    rollout = work.spec.rollout
    if rollout.mode == "direct":
        return promote(work, state, f"gate passed ({reason}); direct rollout")
    return start_step(work, state.next(phase="rollout"), 0, f"gate passed: {reason}")


def plan(work: Work) -> list[Traffic]:
    rollout = work.spec.rollout
    steps = [Traffic(None, "canary", share * 100) for share in rollout.steps]
    if rollout.mode == "shadow":
        steps.insert(0, Traffic(None, "shadow", 100.0))
    return steps


def start_step(work: Work, state: LoopState, step: int, why: str) -> LoopState:
    assert state.challenger is not None
    planned = plan(work)[step]
    traffic = Traffic(state.challenger, planned.mode, planned.percent)
    what = (
        "mirrors all traffic"
        if traffic.mode == "shadow"
        else f"answers {traffic.percent:g}% of traffic"
    )
    set_traffic(work.project.store, work.model, traffic, actor=work.project.actor, reason=why)
    return work.record(
        state.next(step=step, step_started=iso(now())),
        "rollout_step",
        f"step {step + 1}/{len(plan(work))}: {work.model}@{state.challenger} {what} ({why})",
    )


def bake(work: Work, state: LoopState) -> LoopState:
    assert state.challenger is not None and state.step_started is not None
    waiting = held(work, state, f"stays at rollout step {state.step + 1}")
    if waiting is not None:
        return waiting
    started = datetime.fromisoformat(state.step_started)
    steps = plan(work)
    mode = steps[state.step].mode
    figures = live_figures(
        work.project,
        work.model,
        work.champion().version,
        state.challenger,
        started,
        "shadow" if mode == "shadow" else "canary",
    )
    verdict, reasons = judge_step(
        figures, work.spec.rollout, elapsed_s=(now() - started).total_seconds()
    )
    if verdict == "wait":
        work.steps.append(reasons[0])
        return state
    if verdict == "fail":
        set_traffic(
            work.project.store,
            work.model,
            Traffic(None, "off", 0.0),
            actor=work.project.actor,
            reason="rolled back",
        )
        return work.record(
            finished(work, state, work.champion().version, improving=False),
            "rolled_back",
            f"{work.model}@{state.challenger} rolled back at step {state.step + 1}: "
            + "; ".join(reasons),
        )
    if state.step + 1 < len(steps):
        return start_step(work, state, state.step + 1, "; ".join(reasons))
    return promote(work, state, "; ".join(reasons))


def promote(work: Work, state: LoopState, why: str) -> LoopState:
    assert state.challenger is not None
    registry = work.project.store.registry
    before = work.champion().version
    if before != state.challenger:
        registry.set_alias(
            work.model,
            state.challenger,
            CHAMPION,
            actor=work.project.actor,
            reason=f"loop cycle {state.cycle}: {why}",
        )
    set_traffic(
        work.project.store,
        work.model,
        Traffic(None, "off", 0.0),
        actor=work.project.actor,
        reason="promoted",
    )
    # @challenger named the version that is @champion now: take it off
    registry.remove_alias(
        work.model,
        CHALLENGER,
        actor=work.project.actor,
        reason=f"loop cycle {state.cycle}: promoted to @{CHAMPION}",
    )
    promoted = finished(work, state, state.challenger, improving=True, promoted=True)
    newest = (state.data or {}).get("newest")
    gated = state.gate or {}
    reference = (
        {
            "version": state.challenger,
            "metric": gated["metric"],
            "value": _conservative(gated["metric"], gated["challenger"], gated["rows"]),
            "rows": gated["rows"],
        }
        if gated.get("challenger") is not None
        else None
    )
    return work.record(
        promoted.next(data_since=newest or promoted.last_retrain, reference=reference),
        "promoted",
        f"{work.model}@{state.challenger} is @{CHAMPION} (was {before}): {why}",
    )


def finished(
    work: Work, state: LoopState, champion: int, *, improving: bool, promoted: bool = False
) -> LoopState:
    at = iso(now())
    return LoopState(
        phase="idle",
        cycle=state.cycle + 1,
        champion=champion,
        last_healthy=at,
        last_retrain=at,
        improving=improving and work.spec.triggers.keep_improving is not None,
        holdout_pool=state.holdout_pool,
        data_since=state.data_since,
        promoted_last=promoted,
        reference=state.reference,
        # a promotion ends the learning of a change: the champion embodies it now
        concept_since=None if promoted else state.concept_since,
    )


# Rates in [0, 1] whose uncertainty on n rows is about a proportion's.
_RATES = frozenset(
    {"accuracy", "balanced_accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc"}
)


def _conservative(metric: str, value: float, rows: int) -> float:
    """The lower end of a 95 % interval (Wilson's) of a rate measured on ``rows`` rows.

    A challenger that won on a few dozen held-out rows looks better there than it
    is; holding it to that figure would call its ordinary days a drop. Other
    metrics keep their value.

    Example:
        >>> round(_conservative("accuracy", 0.9, 60), 3), _conservative("rmse", 0.3, 60)
        (0.799, 0.3)
    """
    if metric not in _RATES or not 0.0 <= value <= 1.0 or rows <= 0:
        return value
    z, n = 1.96, float(rows)
    centre = (value + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(value * (1 - value) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half)
