"""Where the loop stands, kept as events so a killed loop resumes where it was.

Every transition appends one ``loop.<phase>`` event (entity ``loop``, the
model's name) whose details are the whole state; the newest such event *is*
the state. A tick that fails appends a ``loop.error`` event: the state it
failed in, with the error and how many ticks in a row have failed. An event is one committed row, so a process killed at any moment
leaves either the old state or the new one, never half of each, and every
decision stays in the audit log with its reasons. Each phase's work is
idempotent (content-addressed datasets, a run found again by its name, a
version found again by its run), so redoing the step a kill interrupted is
safe.

One loop per model at a time: :func:`hold_lease` takes an exclusive lock on
``.mlcycle/loop-<model>.lock`` and, on PostgreSQL, an advisory lock, both
released if the process dies.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlcycle.errors import ConflictError

if TYPE_CHECKING:
    from mlcycle.store import EventRecord, MetadataStore

__all__ = ["LoopState", "Phase", "history", "hold_lease", "read_state", "write_state"]

Phase = Literal["idle", "triggered", "retraining", "gating", "rollout"]
ENTITY = "loop"


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
    run: str | None = None
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoopState:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def next(self, **changes: Any) -> LoopState:
        return replace(self, **changes)


def read_state(store: MetadataStore, model: str) -> LoopState:
    """The newest recorded state of ``model``'s loop (idle if it never ran)."""
    events = store.list_events(entity_type=ENTITY, entity_id=model, limit=1)
    return LoopState.from_dict(events[0].details) if events else LoopState()


def write_state(
    store: MetadataStore, model: str, state: LoopState, *, action: str, reason: str, actor: str
) -> LoopState:
    """Record ``state`` as the loop's new state, with what happened and why."""
    store.record_event(
        f"loop.{action}", ENTITY, model, actor=actor, reason=reason, details=state.to_dict()
    )
    return state


def history(store: MetadataStore, model: str, limit: int = 50) -> list[EventRecord]:
    """The loop's decisions, newest first."""
    return store.list_events(entity_type=ENTITY, entity_id=model, limit=limit)


@contextmanager
def hold_lease(root: Path, model: str, store: MetadataStore | None = None) -> Iterator[None]:
    """Run the loop of ``model`` alone; raise if another process holds it.

    Always an exclusive file lock on ``.mlcycle/loop-<model>.lock`` (released
    by the kernel if the process dies); with a PostgreSQL store also a session
    advisory lock, so loops on other machines sharing the store are kept out
    too (released by the server when the connection goes).
    """
    path = root / ".mlcycle" / f"loop-{model}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConflictError(
                f"another mlcycle loop is running for {model!r} (lock {path})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        if store is None or store.backend != "postgresql":
            yield
            return
        from sqlalchemy import text

        with store.engine.connect() as connection:
            key = {"key": f"mlcycle-loop:{model}"}
            held = connection.execute(
                text("SELECT pg_try_advisory_lock(hashtext(:key))"), key
            ).scalar()
            connection.commit()  # the lock is the session's: no transaction left open
            if not held:
                raise ConflictError(
                    f"another mlcycle loop is running for {model!r} on the PostgreSQL store"
                )
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(hashtext(:key))"), key)
                connection.commit()
    finally:
        os.close(fd)
