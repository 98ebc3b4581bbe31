"""Plain, immutable records the store returns: no ORM session leaks out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

# ``pruned``: a tuning trial its study stopped early (its curve ends where it stopped).
RunStatus = Literal["running", "finished", "failed", "killed", "pruned"]
RUN_STATUSES: tuple[RunStatus, ...] = ("running", "finished", "failed", "killed", "pruned")


def utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ArtifactRecord:
    sha256: str
    size: int
    uri: str
    media_type: str
    created_at: datetime


@dataclass(frozen=True)
class DatasetVersionRecord:
    id: int
    dataset: str
    version: int
    fingerprint: str
    artifact_sha256: str
    source: str
    n_rows: int
    schema: dict[str, Any]
    profile: dict[str, Any]
    created_at: datetime
    created_by: str

    @property
    def ref(self) -> str:
        """``name@version``, the way users name it."""
        return f"{self.dataset}@{self.version}"


@dataclass(frozen=True)
class DatasetRecord:
    name: str
    versions: int
    latest: int | None
    created_at: datetime


@dataclass(frozen=True)
class SplitRecord:
    version_id: int
    key: str
    config: dict[str, Any]
    counts: dict[str, int]
    artifact_sha256: str


@dataclass(frozen=True)
class MetricPoint:
    key: str
    step: int
    value: float
    logged_at: datetime


@dataclass(frozen=True)
class RunRecord:
    id: str
    name: str
    experiment: str
    status: RunStatus
    params: dict[str, Any]
    summary: dict[str, Any]
    tags: dict[str, str]
    dataset_version_id: int | None
    parent_run_id: str | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    artifacts: dict[str, str] = field(default_factory=dict)
    # When the process doing the run last said it was alive, and how often it
    # means to (None: unknown); both None for runs that never beat.
    heartbeat_at: datetime | None = None
    heartbeat_every_s: float | None = None

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class EventRecord:
    id: int
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    reason: str | None
    details: dict[str, Any]
