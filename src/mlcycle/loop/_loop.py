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

Every tick is fenced: whatever it raises is recorded as a ``loop.error`` event
(the phase and step it failed in, the message, the traceback of an
unexpected error, how many ticks in a row have failed) and raised as a
:class:`TickError`; :func:`run_loop` then waits ``interval x 2^k`` (at most
10 minutes, or the interval if that is longer) and ticks again, so a
passing fault costs a few ticks and a lasting one does not spin. A
configuration error cannot heal by itself: the loop waits the longest
interval at once, says so, and reads ``mlcycle.yaml`` again before it retries.
"""

from __future__ import annotations

import contextlib
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc

from mlcycle.errors import MlcycleError, NotFoundError, SpecError
from mlcycle.loop._base import TriggerContext
from mlcycle.loop._data import DataMode, labelled_rows, retraining_data
from mlcycle.loop._gate import gate
from mlcycle.loop._rollout import Traffic, judge_step, live_figures, set_traffic
from mlcycle.loop._state import LoopState, hold_lease, read_state, write_state
from mlcycle.plugins import TRIGGERS

if TYPE_CHECKING:
    from mlcycle.monitor import MonitorResult
    from mlcycle.project import Project
    from mlcycle.store import ModelVersionRecord

__all__ = ["TickError", "TickResult", "backoff", "loop_model", "run_loop", "tick"]

CHAMPION, CHALLENGER = "champion", "challenger"
MAX_MISSES = 2  # challengers in a row no better than the champion end "keep improving"
# The longest wait between two ticks after errors (unless the interval itself is longer).
MAX_BACKOFF_S = 600.0
_TRACEBACK_CHARS = 4000


@dataclass
class TickResult:
    """What one tick did: the state it left and a line per step taken."""

    model: str
    state: LoopState
    steps: list[str] = field(default_factory=list)


class TickError(MlcycleError):
    """A tick failed; it was recorded as a ``loop.error`` event.

    ``error`` is what was recorded: ``phase``, ``step``, ``message``,
    ``in_a_row``, ``retry_in_s`` and ``configuration`` (a configuration error).
    """

    def __init__(self, message: str, error: dict[str, Any]) -> None:
        super().__init__(message)
        self.error = error

    @property
    def retry_in_s(self) -> float:
        return float(self.error["retry_in_s"])


def backoff(interval_s: float, errors: int, *, configuration: bool = False) -> float:
    """Seconds to wait after ``errors`` failed ticks in a row: ``interval_s x 2^errors``, capped.

    The cap is :data:`MAX_BACKOFF_S` (10 minutes) or the interval if that is
    longer; a configuration error waits the cap at once (retrying sooner cannot help).

    Example:
        >>> backoff(60, 1), backoff(60, 3), backoff(60, 9), backoff(60, 1, configuration=True)
        (120.0, 480.0, 600.0, 600.0)
    """
    cap = max(float(interval_s), MAX_BACKOFF_S)
    if configuration:
        return cap
    return min(cap, float(interval_s) * 2.0 ** min(max(errors, 0), 30))


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
        self.phase = "idle"
        self.step = "start"  # what the tick was doing, for the record of an error

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
        context = TriggerContext(self.project, champion, state, result, now, self.spec)
        reasons: list[str] = []
        kinds: list[str] = []
        changed = False
        for name, setting in self.spec.triggers.settings().items():
            trigger = TRIGGERS.get(name)(setting)
            reason = trigger.fire(context)
            if reason is not None:
                reasons.append(reason)
                kinds.append(trigger.kind)
                changed = changed or trigger.changes_concept
        if not reasons:
            if result is not None:
                state = state.next(champion=champion.version, last_healthy=_iso(now))
                rows = result.window.get("rows", 0)
                if result.features.drift is None:
                    self.steps.append(f"no trigger; too few rows for a drift verdict ({rows})")
                else:
                    self.steps.append(
                        f"healthy: {result.features.share_drifted:.0%} of inputs drifted "
                        f"({rows} rows)"
                    )
            else:
                self.steps.append("no served rows to check yet")
            return state
        # A change (drift, a drop, strange inputs) is fresh since the last healthy check
        # (or since the change being learnt began); more labels of the same concept are
        # fresh since the data the champion trained on.
        return self.record(
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
        # A new concept makes earlier held-out rows wrong, otherwise they still judge:
        # a change starts a new pool, and the retrainings that learn it share it.
        starts = mode == "window" and state.concept_since is None
        pool = None if starts else state.holdout_pool
        concept = state.fresh_since if starts else state.concept_since
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
            state.next(
                phase="retraining",
                data=details,
                holdout_pool=data.holdout_ref,
                concept_since=concept or state.fresh_since if mode == "window" else concept,
            ),
            "data",
            f"{data.train_ref} to train on ({'; '.join(data.parts)}), "
            f"{data.holdout_ref} ({data.holdout_rows} rows) held out for the gate; "
            f"{mode}: {why}",
        )

    # -- retraining: an ordinary run with the champion's spec -----------------------------

    def retrain(self, state: LoopState) -> LoopState:
        from mlcycle.train import resume, train
        from mlcycle.workflow import register

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
            # Two challengers in a row, each trained on more rows, no better than the
            # champion end the "keep improving" streak (one may be the noise of a
            # training run); one better by min_delta but not yet significant only
            # waits for more held-out rows.
            misses = state.misses + (0 if verdict.improved else 1)
            finished = self.finished(
                state, champion.version, improving=state.improving and misses < MAX_MISSES
            )
            return self.record(
                finished.next(misses=misses if finished.improving else 0),
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
                "value": _conservative(gate["metric"], gate["challenger"], gate["rows"]),
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
            # a promotion ends the learning of a change: the champion embodies it now
            concept_since=None if promoted else state.concept_since,
        )


def _advance(work: _Tick, state: LoopState) -> LoopState:
    """Moves ``state`` along as far as it goes without waiting (each phase at most once)."""
    project, name = work.project, work.model
    work.phase, work.step = state.phase, "monitor"
    observed = work.observe()
    for _ in range(8):  # each phase at most once per tick, plus rollout steps
        before = state
        work.phase = state.phase
        if state.phase == "idle":
            work.step = "check"
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
            work.step = "collect"
            state = work.collect(state)
        elif state.phase == "retraining":
            work.step = "retrain"
            state = work.retrain(state)
        elif state.phase == "gating":
            work.step = "judge"
            state = work.judge(state)
            if state.phase == "idle":
                break
        elif state.phase == "rollout":
            work.step = "bake"
            state = work.bake(state)
            if state.phase == "idle":
                break
        if state == before:
            break
    return state


def _one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, SpecError):
        return f"configuration error: {text}"
    if isinstance(exc, MlcycleError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _failed(
    project: Project, work: _Tick, start: LoopState, exc: Exception, interval_s: float
) -> TickError:
    """Record a failed tick as a ``loop.error`` event; the error to raise."""
    configuration = isinstance(exc, SpecError)
    errors = start.errors + 1
    message = _one_line(exc)
    error: dict[str, Any] = {
        "at": _iso(_now()),
        "phase": work.phase,
        "step": work.step,
        "type": type(exc).__name__,
        "message": message,
        "configuration": configuration,
        "in_a_row": errors,
        "retry_in_s": backoff(interval_s, errors, configuration=configuration),
    }
    if not isinstance(exc, MlcycleError):  # a bug or an outside failure: keep where it came from
        error["traceback"] = "".join(traceback.format_exception(exc))[-_TRACEBACK_CHARS:]
    what = f"{work.phase} ({work.step}): {message}"
    if configuration:
        what += "; fix mlcycle.yaml: the loop reads it again before it retries"
    reason = f"{what} ({errors} in a row; retrying in {error['retry_in_s']:g} s)"
    try:
        persisted = read_state(project.store, work.model)  # with what the tick did record
        write_state(
            project.store,
            work.model,
            persisted.next(errors=errors, last_error=error),
            action="error",
            reason=reason,
            actor=project.actor,
        )
    except Exception as unrecorded:  # the store itself is failing: still report the first error
        error["unrecorded"] = _one_line(unrecorded)
    return TickError(f"loop tick failed in {what}", error)


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


def tick(
    project: Project, model: str | None = None, *, interval_s: float | None = None
) -> TickResult:
    """Advance the loop of ``model`` as far as it goes without waiting.

    Args:
        interval_s: the loop's interval (default ``loop.interval_s``), from
            which the wait after a failure is computed.

    Raises:
        TickError: the tick failed; a ``loop.error`` event records it.
    """
    name = loop_model(project, model)
    work = _Tick(project, name)
    start = read_state(project.store, name)
    interval = project.spec.loop.interval_s if interval_s is None else interval_s
    try:
        state = _advance(work, start)
    except Exception as exc:
        raise _failed(project, work, start, exc, interval) from exc
    if state.errors:
        last = (state.last_error or {}).get("message", "")
        state = work.record(
            state.next(errors=0),
            "recovered",
            f"the tick succeeded after {state.errors} failed in a row (last: {last})",
        )
    return TickResult(name, state, work.steps)


def _reread_spec(project: Project) -> None:
    """Read ``mlcycle.yaml`` again (after a configuration error); keep the old spec if it is bad."""
    from mlcycle.project import SPEC_FILE
    from mlcycle.spec import load_spec

    path = project.root / SPEC_FILE
    with contextlib.suppress(MlcycleError):  # still broken: the next tick fails and says so
        project.spec = load_spec(path)


def run_loop(
    project: Project,
    model: str | None = None,
    *,
    once: bool = False,
    interval_s: float | None = None,
    max_ticks: int | None = None,
    on_tick: Callable[[TickResult], None] | None = None,
    on_error: Callable[[TickError], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> TickResult:
    """Tick forever (every ``loop.interval_s``), once, or ``max_ticks`` times, holding the lease.

    A failed tick is recorded (see :func:`tick`), handed to ``on_error``, and
    followed by a wait of :func:`backoff` instead of the interval; the loop
    goes on. ``sleep`` waits between ticks (a test passes its own).

    Returns:
        The last tick's result.

    Raises:
        ConflictError: another loop process looks after this model.
        TickError: the last tick (the only one, with ``once``) failed.
    """
    name = loop_model(project, model)
    interval = project.spec.loop.interval_s if interval_s is None else interval_s
    ticks = 0
    with hold_lease(project.root, name, project.store):
        while True:
            ticks += 1
            last = once or (max_ticks is not None and ticks >= max_ticks)
            try:
                result = tick(project, name, interval_s=interval)
            except TickError as exc:
                if last:
                    raise
                if on_error is not None:
                    on_error(exc)
                if exc.error["configuration"]:
                    _reread_spec(project)
                sleep(exc.retry_in_s)
                continue
            if on_tick is not None:
                on_tick(result)
            if last:
                return result
            sleep(interval)
