"""What the retraining loop records for others to read: its state and the traffic split.

Both are typed records kept as events in the audit log, so a killed loop
resumes where it was and every decision keeps its reasons. Each has one
writer and one reader here, the only code that knows how it is spelled in an
event:

* :class:`Traffic`, the challenger's share of traffic (entity ``rollout``,
  action ``rollout.traffic``): the loop writes it (:func:`set_traffic`), a
  server that follows the model reads it (:func:`read_traffic`).
* :class:`LoopState`, where one model's loop stands (entity ``loop``, action
  ``loop.<what happened>``): the loop writes it (:func:`write_state`) and reads
  it back (:func:`read_state`); :func:`history` lists the decisions.
* A hold on the loop's promotions (entity ``loop_promotion``, actions
  ``loop.promotion_held`` / ``loop.promotion_released``): a person writes it
  (:func:`hold_promotion`, from the CLI or the dashboard), the loop reads it
  (:func:`promotion_hold`) and, while held, takes no challenger further than
  the gate nor a rollout to its next step. It is apart from the state, so a
  loop writing its state in the same moment can never undo it.

They live in the store, not in :mod:`mlcycle.loop`, so that a server can read
the traffic split without importing the loop, its gate and monitoring.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from mlcycle.store._metadata import MetadataStore
    from mlcycle.store._records import EventRecord

__all__ = [
    "LoopState",
    "Phase",
    "Traffic",
    "TrafficMode",
    "history",
    "hold_promotion",
    "promotion_hold",
    "read_state",
    "read_traffic",
    "set_traffic",
    "write_state",
]

TrafficMode = Literal["canary", "shadow", "off"]
Phase = Literal["idle", "triggered", "retraining", "gating", "rollout"]
_TRAFFIC = "rollout"
_LOOP = "loop"


@dataclass(frozen=True)
class Traffic:
    """The challenger's share of traffic (``off``: the champion answers everything).

    Attributes:
        version: the challenger's version number (``None`` when ``off``).
        mode: ``canary`` (a share of requests, sticky by key), ``shadow``
            (every request mirrored, never answered with) or ``off``.
        percent: the share of traffic, 0 to 100.
    """

    version: int | None
    mode: TrafficMode
    percent: float

    def __post_init__(self) -> None:
        if self.mode not in get_args(TrafficMode):
            raise ValueError(f"traffic mode {self.mode!r}: expected one of {get_args(TrafficMode)}")


def set_traffic(
    store: MetadataStore, model: str, traffic: Traffic, *, actor: str, reason: str
) -> None:
    """Record a new traffic split; servers following ``model`` pick it up on their next poll."""
    store.record_event(
        "rollout.traffic",
        _TRAFFIC,
        model,
        actor=actor,
        reason=reason,
        details={"version": traffic.version, "mode": traffic.mode, "percent": traffic.percent},
    )


def read_traffic(store: MetadataStore, model: str) -> Traffic:
    """The newest traffic split of ``model`` (``off`` if none was ever set)."""
    events = store.list_events(entity_type=_TRAFFIC, entity_id=model, limit=1)
    if not events:
        return Traffic(None, "off", 0.0)
    d = events[0].details
    version = d.get("version")
    return Traffic(
        None if version is None else int(version), d.get("mode", "off"), float(d.get("percent", 0))
    )


@dataclass(frozen=True)
class LoopState:
    """The loop of one model: the phase and what the current cycle has made so far."""

    phase: Phase = "idle"
    cycle: int = 0
    champion: int | None = None
    challenger: int | None = None
    triggers: list[str] = field(default_factory=list)
    fresh_since: str | None = None  # ISO time: labels after it are fresh (post-change)
    last_healthy: str | None = None
    last_retrain: str | None = None
    data: dict[str, Any] | None = None
    # the cycle's training run: recorded as soon as it starts, so a killed loop resumes it
    run: str | None = None
    # the cycle's study when the loop retunes (loop.retrain.tune): named before it
    # starts, so a killed loop continues that study instead of starting another
    study: str | None = None
    gate: dict[str, Any] | None = None
    step: int = 0
    step_started: str | None = None
    # what kinds of trigger started this cycle: performance, drift, ood, schedule,
    # new_labels, improve (the data mode ``auto`` chooses by them)
    kinds: list[str] = field(default_factory=list)
    # after a promotion, keep retraining as labels accumulate while challengers win
    improving: bool = False
    # held-out rows of earlier cycles under the current concept (a dataset version):
    # no model trained on them, so each gate judges on more rows than the last
    holdout_pool: str | None = None
    # labelled rows logged after this (ISO time) are ones the champion never trained on
    data_since: str | None = None
    promoted_last: bool = False  # the last cycle ended in a promotion
    # a champion the loop promoted is judged against its score on the gate's held-out
    # rows ({version, metric, value, rows}), not its own small test split
    reference: dict[str, Any] | None = None
    # a change of concept being learnt (ISO time it began): window retrainings take
    # every labelled row since, until a challenger is promoted
    concept_since: str | None = None
    misses: int = 0  # challengers in a row, while improving, that did not beat the champion
    errors: int = 0  # ticks in a row that ended in an error (0 once a tick succeeds)
    last_error: dict[str, Any] | None = None  # the latest: at, phase, step, message, retry_in_s
    held: str | None = None  # the promotion hold (its time) this cycle noted and waits on

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoopState:
        """The state from its event's details; fields it does not know are left out."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def next(self, **changes: Any) -> LoopState:
        return replace(self, **changes)


def read_state(store: MetadataStore, model: str) -> LoopState:
    """The newest recorded state of ``model``'s loop (idle if it never ran)."""
    events = store.list_events(entity_type=_LOOP, entity_id=model, limit=1)
    return LoopState.from_dict(events[0].details) if events else LoopState()


def write_state(
    store: MetadataStore, model: str, state: LoopState, *, action: str, reason: str, actor: str
) -> LoopState:
    """Record ``state`` as the loop's new state, with what happened (``loop.<action>``) and why."""
    store.record_event(
        f"loop.{action}", _LOOP, model, actor=actor, reason=reason, details=state.to_dict()
    )
    return state


def history(store: MetadataStore, model: str, limit: int = 50) -> list[EventRecord]:
    """The loop's decisions, newest first."""
    return store.list_events(entity_type=_LOOP, entity_id=model, limit=limit)


_HOLD = "loop_promotion"


def hold_promotion(
    store: MetadataStore, model: str, *, held: bool, actor: str, reason: str
) -> None:
    """Hold (``held``) or release the promotions of ``model``'s loop, with who and why."""
    store.record_event(
        "loop.promotion_held" if held else "loop.promotion_released",
        _HOLD,
        model,
        actor=actor,
        reason=reason,
        details={"held": held},
    )


def promotion_hold(store: MetadataStore, model: str) -> EventRecord | None:
    """The event holding ``model``'s promotions (who, when, why), or ``None``: they go ahead."""
    events = store.list_events(entity_type=_HOLD, entity_id=model, limit=1)
    return events[0] if events and events[0].details.get("held") else None
