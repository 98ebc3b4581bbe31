"""The idle phase: is anything wrong with the champion?

Every tick monitors the champion's recent served rows (:func:`observe`, the
story's timeline); while the loop is idle, :func:`idle` turns what it saw
(drift, a drop in realised performance, strange inputs), the schedule and the
new labels into triggers, and starts a cycle when one fires.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from mlcycle.errors import NotFoundError
from mlcycle.loop._data import labelled_rows
from mlcycle.loop._state import LoopState, write_state
from mlcycle.loop._work import Work, iso, now
from mlcycle.monitor import parse_since
from mlcycle.monitor._performance import _verdict

if TYPE_CHECKING:
    from mlcycle.monitor import MonitorResult, PerformanceResult
    from mlcycle.store import ModelVersionRecord

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
    triggers = work.spec.triggers
    if result is not None:
        if triggers.drift and result.features.drift:
            drifted = result.features.drifted_columns
            reasons.append(f"dataset drift in {len(drifted)} inputs ({', '.join(drifted[:5])})")
            kinds.append("drift")
        if triggers.performance_drop:
            drop = dropped(work, state, champion, result.performance, "")
            recent = result.recent_performance
            if drop is None and recent is not None:
                drop = dropped(
                    work, state, champion, recent, f" in the newest {recent.n} labelled rows"
                )
            if drop is not None:
                reasons.append(drop)
                kinds.append("performance")
        if (
            triggers.ood_share is not None
            and result.ood is not None
            and result.ood["alert"] is not None  # None: too few rows for a verdict
            and result.ood["share"] >= triggers.ood_share
        ):
            reasons.append(f"{result.ood['share']:.1%} out-of-distribution inputs")
            kinds.append("ood")
    if triggers.interval is not None:
        since = (
            datetime.fromisoformat(state.last_retrain)
            if state.last_retrain
            else champion.created_at
        )
        if at - since >= parse_since(triggers.interval):
            reasons.append(
                f"schedule: last retraining {since:%Y-%m-%d %H:%M} is older than {triggers.interval}"
            )
            kinds.append("schedule")
    improve = triggers.keep_improving if state.improving else None
    if triggers.new_labels is not None or improve is not None:
        since_retrain = datetime.fromisoformat(state.last_retrain) if state.last_retrain else None
        new = labelled_rows(work.project, champion, since=since_retrain).num_rows
        if triggers.new_labels is not None and new >= triggers.new_labels:
            reasons.append(f"{new} new labelled rows (trigger at {triggers.new_labels})")
            kinds.append("new_labels")
        trained = trained_rows(work, champion)
        if improve is not None and trained:
            # rows the champion never saw; after a promotion a few new labels are
            # enough to go on, after a near miss as many again as it trained on
            unseen = new
            if state.data_since and state.data_since != state.last_retrain:
                since = datetime.fromisoformat(state.data_since)
                unseen = labelled_rows(work.project, champion, since=since).num_rows
            wait = work.spec.min_labels if state.promoted_last else improve * trained
            if unseen >= improve * trained and new >= wait:
                reasons.append(
                    f"keep improving: {unseen} labelled rows {champion.ref} never trained "
                    f"on, at least {improve:g}x the {trained} rows it trained on"
                )
                kinds.append("improve")
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
    changed = any(k in kinds for k in ("drift", "performance", "ood"))
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


def dropped(
    work: Work,
    state: LoopState,
    champion: ModelVersionRecord,
    performance: PerformanceResult | None,
    where: str,
) -> str | None:
    """Why the champion's realised performance dropped, or None.

    A version the loop promoted is held to its score on the gate's held-out
    rows (hundreds of fresh rows) rather than to its own test split, which
    for a model trained on a few hundred fresh rows is too small to judge by.
    """
    if performance is None:
        return None
    ref = state.reference
    if ref and ref.get("version") == champion.version and ref.get("metric") == performance.metric:
        alert, reason = _verdict(
            performance.metric,
            performance.value,
            performance.low,
            performance.high,
            float(ref["value"]),
            performance.n,
            work.project.spec.monitor.performance,
        )
        if alert:
            return (
                f"performance drop{where}: {reason} (the reference: its score on "
                f"{ref['rows']} rows the gate held out)"
            )
        return None
    return f"performance drop{where}: {performance.reason}" if performance.alert else None


def trained_rows(work: Work, version: ModelVersionRecord) -> int:
    """Rows of the dataset ``version`` was trained on (0 when unknown)."""
    ref = version.lineage.get("dataset")
    if not ref:
        return 0
    try:
        return int(work.project.datasets.get(str(ref)).n_rows)
    except NotFoundError:
        return 0
