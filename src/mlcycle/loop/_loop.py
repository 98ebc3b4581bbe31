"""The closed loop: watch the champion, retrain, judge, roll out, promote or roll back.

One :func:`tick` advances the loop of a model as far as it can without
waiting: ``idle`` (monitor the recent served rows; a trigger fires) →
``triggered`` (wait for enough fresh labelled rows since the last healthy
check, then version them) → ``retraining`` (an ordinary training run with the
champion's recorded spec, or with ``loop.retrain.tune`` the best trial of a
study from it, registered as ``@challenger``) → ``gating``
(challenger and champion on the same fresh held-out rows) → ``rollout``
(shadow and/or canary steps, each baked and judged on live figures) →
promotion (``@champion`` moves, servers hot-swap) or rollback, and back to
``idle``. Each transition is an event holding the whole state (see
:mod:`mlcycle.loop._state`), so a killed loop picks up where it was.

Each phase is one function of the tick's :class:`~mlcycle.loop._work.Work`
and the state, in its own module: ``idle`` in :mod:`~mlcycle.loop._watch`,
``triggered`` and ``retraining`` in :mod:`~mlcycle.loop._retrain`, ``gating``
and ``rollout`` in :mod:`~mlcycle.loop._release`; :data:`PHASES` maps each
phase to its function and a tick dispatches by it.

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
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlcycle.errors import MlcycleError, SpecError
from mlcycle.loop._release import bake, judge
from mlcycle.loop._retrain import collect, retrain
from mlcycle.loop._state import LoopState, hold_lease, read_state, write_state
from mlcycle.loop._watch import idle, observe
from mlcycle.loop._work import Work, iso, now

if TYPE_CHECKING:
    from mlcycle.project import Project

__all__ = [
    "PHASES",
    "PhaseStep",
    "TickError",
    "TickResult",
    "backoff",
    "loop_model",
    "run_loop",
    "tick",
]

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


@dataclass(frozen=True)
class PhaseStep:
    """What a tick does in one phase: the step's name (for the record of an error) and its function."""

    step: str
    run: Callable[[Work, LoopState], LoopState]


#: The state machine: what each phase does. A phase's function moves the state along
#: (or leaves it, to wait) and records each transition.
PHASES: dict[str, PhaseStep] = {
    "idle": PhaseStep("check", idle),
    "triggered": PhaseStep("collect", collect),
    "retraining": PhaseStep("retrain", retrain),
    "gating": PhaseStep("judge", judge),
    "rollout": PhaseStep("bake", bake),
}


def _advance(work: Work, state: LoopState) -> LoopState:
    """Moves ``state`` along as far as it goes without waiting (each phase at most once).

    The champion is monitored first, every tick (the story's timeline); then
    each phase runs until one waits (the state is unchanged) or a cycle ends
    (the loop is idle again).
    """
    work.phase, work.step = state.phase, "monitor"
    work.observed = observe(work)
    for _ in range(8):  # each phase at most once per tick, plus rollout steps
        before = state
        phase = PHASES.get(state.phase)
        if phase is None:  # only a hand-edited event could say so
            raise MlcycleError(
                f"loop state: unknown phase {state.phase!r} (expected one of {list(PHASES)})"
            )
        work.phase, work.step = state.phase, phase.step
        state = phase.run(work, state)
        if state == before or state.phase == "idle":
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
    project: Project, work: Work, start: LoopState, exc: Exception, interval_s: float
) -> TickError:
    """Record a failed tick as a ``loop.error`` event; the error to raise."""
    configuration = isinstance(exc, SpecError)
    errors = start.errors + 1
    message = _one_line(exc)
    error: dict[str, Any] = {
        "at": iso(now()),
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
    work = Work(project, name)
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
