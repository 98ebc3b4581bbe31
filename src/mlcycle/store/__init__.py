"""Metadata (SQL) and artifact (fsspec) stores."""

from __future__ import annotations

from mlcycle.store._artifacts import Artifacts, FsspecArtifactStore
from mlcycle.store._base import ArtifactStore, StoredBlob
from mlcycle.store._engine import HEAD_REVISION, current_revision, head_revision, upgrade
from mlcycle.store._metadata import MetadataStore
from mlcycle.store._records import (
    ArtifactRecord,
    DatasetRecord,
    DatasetVersionRecord,
    EventRecord,
    MetricPoint,
    RunRecord,
    RunStatus,
    SplitRecord,
)

__all__ = [
    "HEAD_REVISION",
    "ArtifactRecord",
    "ArtifactStore",
    "Artifacts",
    "DatasetRecord",
    "DatasetVersionRecord",
    "EventRecord",
    "FsspecArtifactStore",
    "MetadataStore",
    "MetricPoint",
    "RunRecord",
    "RunStatus",
    "SplitRecord",
    "StoredBlob",
    "current_revision",
    "head_revision",
    "upgrade",
]
