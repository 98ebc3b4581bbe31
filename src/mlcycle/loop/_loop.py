"""The closed loop: watch the champion, retrain, judge, roll out, promote or roll back.

One :func:`tick` advances the loop of a model as far as it can without
waiting: ``idle`` (monitor the recent served rows; a trigger fires) →
``triggered`` (wait for enough fresh labelled rows since the last healthy
check, then version them) → ``retraining`` (an ordinary training run with the
champion's recorded spec, registered as ``@challenger``) → ``gating``
(challenger and champion on the same fresh held-out rows) → ``rollout``
(shadow and/or canary steps, each baked and judged on live figures) →
promotion (``@champion`` moves, servers hot-swap) or rollback, and back to
``idle``. Each transition is an event holding the whole state (see
:mod:`mlcycle.loop._state`), so a killed loop picks up where it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc

from mlcycle.errors import NotFoundError, SpecError
from mlcycle.loop._data import DataMode, labelled_rows, retraining_data
from mlcycle.loop._gate import gate
from mlcycle.loop._rollout import Traffic, judge_step, live_figures, set_traffic
from mlcycle.loop._state import LoopState, hold_lease, read_state, write_state
from mlcycle.monitor import parse_since
from mlcycle.monitor._performance import _verdict

if TYPE_CHECKING:
    from mlcycle.monitor import MonitorResult, PerformanceResult
    from mlcycle.project import Project
    from mlcycle.store import ModelVersionRecord

__all__ = ["TickResult", "loop_model", "run_loop", "tick"]

CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass
class TickResult:
    """What one tick did: the state it left and a line per step taken."""

    model: str
    state: LoopState
    steps: list[str] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def loop_model(project: Project, model: str | None = None) -> str:
    """The model the loop looks after: the argument, ``loop.model``, or the only one registered."""
    name = model or project.spec.loop.model
    if name:
        return name
    models = project.store.registry.list_models()
    if len(models) != 1:
        known = ", ".join(m.name for m in models) or "none"
        raise SpecError(f"loop.model: name the model to look after (registered: {known})")
    return models[0].name


class _Tick:
    def __init__(self, project: Project, model: str) -> None:
        self.project = project
        self.model = model
        self.spec = project.spec.loop
        self.steps: list[str] = []

    def record(self, state: LoopState, action: str, reason: str) -> LoopState:
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

    # -- idle: is anything wrong? ---------------------------------------------------------

    def observe(self) -> MonitorResult | None:
        """Monitor the champion's recent served rows (every tick: the story's timeline)."""
        from mlcycle.monitor import monitor

        try:
            return monitor(
                self.project,
                self.champion().ref,
                last=self.spec.window_rows,
                recent_labels=self.spec.triggers.performance_rows,
            )
        except NotFoundError:
            return None

    def check(self, state: LoopState, result: MonitorResult | None) -> LoopState:
        champion = self.champion()
        now = _now()
        reasons: list[str] = []
        kinds: list[str] = []
        triggers = self.spec.triggers
        if result is not None:
            if triggers.drift and result.features.drift:
                drifted = result.features.drifted_columns
                reasons.append(f"dataset drift in {len(drifted)} inputs ({', '.join(drifted[:5])})")
                kinds.append("drift")
            if triggers.performance_drop:
                dropped = self.dropped(state, champion, result.performance, "")
                recent = result.recent_performance
                if dropped is None and recent is not None:
                    dropped = self.dropped(
                        state, champion, recent, f" in the newest {recent.n} labelled rows"
                    )
                if dropped is not None:
                    reasons.append(dropped)
                    kinds.append("performance")
            if (
                triggers.ood_share is not None
                and result.ood is not None
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
            if now - since >= parse_since(triggers.interval):
                reasons.append(
                    f"schedule: last retraining {since:%Y-%m-%d %H:%M} is older than {triggers.interval}"
                )
                kinds.append("schedule")
        improve = triggers.keep_improving if state.improving else None
        if triggers.new_labels is not None or improve is not None:
            since_retrain = (
                datetime.fromisoformat(state.last_retrain) if state.last_retrain else None
            )
            new = labelled_rows(self.project, champion, since=since_retrain).num_rows
            if triggers.new_labels is not None and new >= triggers.new_labels:
                reasons.append(f"{new} new labelled rows (trigger at {triggers.new_labels})")
                kinds.append("new_labels")
            trained = self.trained_rows(champion)
            if improve is not None and trained:
                # rows the champion never saw; after a promotion a few new labels are
                # enough to go on, after a near miss as many again as it trained on
                unseen = new
                if state.data_since and state.data_since != state.last_retrain:
                    since = datetime.fromisoformat(state.data_since)
                    unseen = labelled_rows(self.project, champion, since=since).num_rows
                wait = self.spec.min_labels if state.promoted_last else improve * trained
                if unseen >= improve * trained and new >= wait:
                    reasons.append(
                        f"keep improving: {unseen} labelled rows {champion.ref} never trained "
                        f"on, at least {improve:g}x the {trained} rows it trained on"
                    )
                    kinds.append("improve")
        if not reasons:
            if result is not None:
                state = state.next(champion=champion.version, last_healthy=_iso(now))
                self.steps.append(f"healthy: {result.features.share_drifted:.0%} of inputs drifted")
            else:
                self.steps.append("no served rows to check yet")
            return state
        # A change (drift, a drop, strange inputs) is fresh since the last healthy check;
        # more labels of the same concept are fresh since the last retraining.
        changed = any(k in kinds for k in ("drift", "performance", "ood"))
        return self.record(
            state.next(
                phase="triggered",
                champion=champion.version,
                triggers=reasons,
                kinds=kinds,
                fresh_since=state.last_healthy
                if changed
                else (state.data_since or state.last_retrain),
            ),
            "triggered",
            "; ".join(reasons),
        )

    def dropped(
        self,
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
        if (
            ref
            and ref.get("version") == champion.version
            and ref.get("metric") == performance.metric
        ):
            alert, reason = _verdict(
                performance.metric,
                performance.value,
                performance.low,
                performance.high,
                float(ref["value"]),
                performance.n,
                self.project.spec.monitor.performance,
            )
            if alert:
                return (
                    f"performance drop{where}: {reason} (the reference: its score on "
                    f"{ref['rows']} rows the gate held out)"
                )
            return None
        return f"performance drop{where}: {performance.reason}" if performance.alert else None

    def trained_rows(self, version: ModelVersionRecord) -> int:
        """Rows of the dataset ``version`` was trained on (0 when unknown)."""
        ref = version.lineage.get("dataset")
        if not ref:
            return 0
        try:
            return int(self.project.datasets.get(str(ref)).n_rows)
        except NotFoundError:
            return 0

    def data_mode(self, state: LoopState) -> tuple[DataMode, str]:
        """What the challenger trains on, and why."""
        mode = self.spec.data
        if mode != "auto":
            return mode, f"loop.data is {mode!r}"
        if "performance" in state.kinds:
            return "window", (
                "the champion's performance dropped: the old labels may be wrong now "
                "(a change of concept), so the challenger learns from the fresh rows alone"
            )
        return "reference+window", (
            "no performance drop: the old labels still hold, so the champion's data "
            "and the fresh rows together"
        )

    # -- triggered: collect fresh labels, version them ------------------------------------

    def collect(self, state: LoopState) -> LoopState:
        champion = self.champion()
        since = datetime.fromisoformat(state.fresh_since) if state.fresh_since else None
        fresh = labelled_rows(self.project, champion, since=since)
        if fresh.num_rows < self.spec.min_labels:
            self.steps.append(
                f"waiting for labels: {fresh.num_rows}/{self.spec.min_labels} fresh labelled rows"
            )
            return state
        fresh = fresh.slice(max(0, fresh.num_rows - self.spec.window_rows))
        mode, why = self.data_mode(state)
        history = labelled_rows(self.project, champion) if mode == "all" else None
        # a new concept makes earlier held-out rows wrong; otherwise they still judge
        pool = None if mode == "window" else state.holdout_pool
        data = retraining_data(
            self.project,
            champion,
            fresh,
            mode=mode,
            holdout=self.spec.holdout,
            seed=state.cycle,
            history=history,
            earlier_holdout=pool,
            max_holdout_rows=self.spec.max_holdout_rows,
        )
        newest = pc.max(fresh.column("time")).as_py() if "time" in fresh.column_names else None
        details = {
            **data.to_dict(),
            "mode": mode,
            "why": why,
            "newest": None if newest is None else _iso(newest + timedelta(microseconds=1)),
        }
        return self.record(
            state.next(phase="retraining", data=details, holdout_pool=data.holdout_ref),
            "data",
            f"{data.train_ref} to train on ({'; '.join(data.parts)}), "
            f"{data.holdout_ref} ({data.holdout_rows} rows) held out for the gate; "
            f"{mode}: {why}",
        )

    # -- retraining: an ordinary run with the champion's spec -----------------------------

    def retrain(self, state: LoopState) -> LoopState:
        from mlcycle.registry import register
        from mlcycle.train import resume, train

        assert state.data is not None
        champion = self.champion()
        name = f"loop-{self.model}-c{state.cycle}"
        existing = self.project.store.list_runs(name=name, limit=1)
        params = dict(champion.lineage.get("params", {}).get("train") or {})
        params.pop("data", None)
        if existing and existing[0].status == "finished":
            run_id = existing[0].id
        elif existing and existing[0].status == "running":
            run_id = resume(self.project, existing[0].id).run_id
            self.steps.append(f"resumed the interrupted run {run_id[:8]}")
        else:
            outcome = train(
                self.project,
                data=state.data["train_ref"],
                overrides={f"train.{k}": v for k, v in params.items()},
                name=name,
            )
            run_id = outcome.run_id
        made = [
            v for v in self.project.store.registry.list_versions(self.model) if v.run_id == run_id
        ]
        if made:
            version = made[0]
            self.project.store.registry.set_alias(
                self.model, version.version, CHALLENGER, actor=self.project.actor, reason="loop"
            )
        else:
            version = register(
                self.project,
                run_id,
                self.model,
                alias=CHALLENGER,
                description=f"challenger of cycle {state.cycle}: {'; '.join(state.triggers)}",
                reason=f"loop cycle {state.cycle}: retrained on {state.data['train_ref']}",
            )
        return self.record(
            state.next(phase="gating", run=run_id, challenger=version.version),
            "retrained",
            f"run {run_id[:8]} on {state.data['train_ref']} registered as "
            f"{self.model}@{version.version} (@{CHALLENGER})",
        )

    # -- gating: the same fresh held-out rows for both -------------------------------------

    def judge(self, state: LoopState) -> LoopState:
        from mlcycle.registry import load

        assert state.data is not None and state.challenger is not None
        champion = self.champion()
        holdout = self.project.datasets.load(state.data["holdout_ref"])
        monitor_spec = self.project.spec.monitor
        verdict = gate(
            load(champion.ref, project=self.project),
            load(f"{self.model}@{state.challenger}", project=self.project),
            holdout,
            target=str(champion.signature.get("target")),
            spec=self.spec.gate,
            sensitive=monitor_spec.fairness.sensitive,
            positive_label=monitor_spec.fairness.positive_label,
            seed=state.cycle,
        )
        details = verdict.to_dict()
        reason = "; ".join(verdict.reasons)
        self.project.store.record_event(
            "gate.promoted" if verdict.promote else "gate.rejected",
            "model",
            self.model,
            actor=self.project.actor,
            reason=reason,
            details={
                "challenger_version": state.challenger,
                "champion_version": champion.version,
                **details,
            },
        )
        if not verdict.promote:
            # A challenger no better than the champion ends the "keep improving" streak; one
            # better by min_delta but not yet significant waits for more held-out rows.
            return self.record(
                self.finished(
                    state, champion.version, improving=state.improving and verdict.improved
                ),
                "rejected",
                f"{self.model}@{state.challenger} stays registered, not promoted: {reason}",
            )
        state = state.next(gate=details)
        rollout = self.spec.rollout
        if rollout.mode == "direct":
            return self.promote(state, f"gate passed ({reason}); direct rollout")
        return self.start_step(state.next(phase="rollout"), 0, f"gate passed: {reason}")

    # -- rollout ---------------------------------------------------------------------------

    def plan(self) -> list[Traffic]:
        rollout = self.spec.rollout
        steps = [Traffic(None, "canary", share * 100) for share in rollout.steps]
        if rollout.mode == "shadow":
            steps.insert(0, Traffic(None, "shadow", 100.0))
        return steps

    def start_step(self, state: LoopState, step: int, why: str) -> LoopState:
        assert state.challenger is not None
        planned = self.plan()[step]
        traffic = Traffic(state.challenger, planned.mode, planned.percent)
        what = (
            "mirrors all traffic"
            if traffic.mode == "shadow"
            else f"answers {traffic.percent:g}% of traffic"
        )
        set_traffic(self.project.store, self.model, traffic, actor=self.project.actor, reason=why)
        return self.record(
            state.next(step=step, step_started=_iso(_now())),
            "rollout_step",
            f"step {step + 1}/{len(self.plan())}: {self.model}@{state.challenger} {what} ({why})",
        )

    def bake(self, state: LoopState) -> LoopState:
        assert state.challenger is not None and state.step_started is not None
        started = datetime.fromisoformat(state.step_started)
        plan = self.plan()
        mode = plan[state.step].mode
        figures = live_figures(
            self.project,
            self.model,
            self.champion().version,
            state.challenger,
            started,
            "shadow" if mode == "shadow" else "canary",
        )
        verdict, reasons = judge_step(
            figures, self.spec.rollout, elapsed_s=(_now() - started).total_seconds()
        )
        if verdict == "wait":
            self.steps.append(reasons[0])
            return state
        if verdict == "fail":
            set_traffic(
                self.project.store,
                self.model,
                Traffic(None, "off", 0.0),
                actor=self.project.actor,
                reason="rolled back",
            )
            return self.record(
                self.finished(state, self.champion().version, improving=False),
                "rolled_back",
                f"{self.model}@{state.challenger} rolled back at step {state.step + 1}: "
                + "; ".join(reasons),
            )
        if state.step + 1 < len(plan):
            return self.start_step(state, state.step + 1, "; ".join(reasons))
        return self.promote(state, "; ".join(reasons))

    def promote(self, state: LoopState, why: str) -> LoopState:
        assert state.challenger is not None
        registry = self.project.store.registry
        before = self.champion().version
        if before != state.challenger:
            registry.set_alias(
                self.model,
                state.challenger,
                CHAMPION,
                actor=self.project.actor,
                reason=f"loop cycle {state.cycle}: {why}",
            )
        set_traffic(
            self.project.store,
            self.model,
            Traffic(None, "off", 0.0),
            actor=self.project.actor,
            reason="promoted",
        )
        # @challenger named the version that is @champion now: take it off
        registry.remove_alias(
            self.model,
            CHALLENGER,
            actor=self.project.actor,
            reason=f"loop cycle {state.cycle}: promoted to @{CHAMPION}",
        )
        promoted = self.finished(state, state.challenger, improving=True, promoted=True)
        newest = (state.data or {}).get("newest")
        gate = state.gate or {}
        reference = (
            {
                "version": state.challenger,
                "metric": gate["metric"],
                "value": gate["challenger"],
                "rows": gate["rows"],
            }
            if gate.get("challenger") is not None
            else None
        )
        return self.record(
            promoted.next(data_since=newest or promoted.last_retrain, reference=reference),
            "promoted",
            f"{self.model}@{state.challenger} is @{CHAMPION} (was {before}): {why}",
        )

    def finished(
        self, state: LoopState, champion: int, *, improving: bool, promoted: bool = False
    ) -> LoopState:
        now = _iso(_now())
        return LoopState(
            phase="idle",
            cycle=state.cycle + 1,
            champion=champion,
            last_healthy=now,
            last_retrain=now,
            improving=improving and self.spec.triggers.keep_improving is not None,
            holdout_pool=state.holdout_pool,
            data_since=state.data_since,
            promoted_last=promoted,
            reference=state.reference,
        )


def tick(project: Project, model: str | None = None) -> TickResult:
    """Advance the loop of ``model`` as far as it goes without waiting."""
    name = loop_model(project, model)
    work = _Tick(project, name)
    state = read_state(project.store, name)
    observed = work.observe()
    for _ in range(8):  # each phase at most once per tick, plus rollout steps
        before = state
        if state.phase == "idle":
            state = work.check(state, observed)
            if state.phase == "idle":
                if state != before:  # remember the healthy check (the fresh data starts after it)
                    state = write_state(
                        project.store,
                        name,
                        state,
                        action="checked",
                        reason=work.steps[-1],
                        actor=project.actor,
                    )
                break
        elif state.phase == "triggered":
            state = work.collect(state)
        elif state.phase == "retraining":
            state = work.retrain(state)
        elif state.phase == "gating":
            state = work.judge(state)
            if state.phase == "idle":
                break
        elif state.phase == "rollout":
            state = work.bake(state)
            if state.phase == "idle":
                break
        if state == before:
            break
    return TickResult(name, state, work.steps)


def run_loop(
    project: Project,
    model: str | None = None,
    *,
    once: bool = False,
    interval_s: float | None = None,
    max_ticks: int | None = None,
    on_tick: Any = None,
) -> TickResult:
    """Tick forever (every ``loop.interval_s``), once, or ``max_ticks`` times, holding the lease.

    Raises:
        ConflictError: another loop process looks after this model.
    """
    name = loop_model(project, model)
    interval = project.spec.loop.interval_s if interval_s is None else interval_s
    ticks = 0
    with hold_lease(project.root, name, project.store):
        while True:
            result = tick(project, name)
            ticks += 1
            if on_tick is not None:
                on_tick(result)
            if once or (max_ticks is not None and ticks >= max_ticks):
                return result
            time.sleep(interval)
