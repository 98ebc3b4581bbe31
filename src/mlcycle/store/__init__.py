"""Metadata (SQL) and artifact (fsspec) stores."""

from __future__ import annotations

from mlcycle.store._artifacts import Artifacts, FsspecArtifactStore
from mlcycle.store._base import ArtifactStore, StoredBlob
from mlcycle.store._engine import HEAD_REVISION, current_revision, head_revision, upgrade
from mlcycle.store._metadata import MetadataStore
from mlcycle.store._names import ALIAS_RULE, MAX_NAME_LENGTH, NAME_RULE, check_alias, check_name
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
from mlcycle.store._registry import ModelRecord, ModelVersionRecord, RegistryStore, parse_model_ref

__all__ = [
    "ALIAS_RULE",
    "HEAD_REVISION",
    "MAX_NAME_LENGTH",
    "NAME_RULE",
    "ArtifactRecord",
    "ArtifactStore",
    "Artifacts",
    "DatasetRecord",
    "DatasetVersionRecord",
    "EventRecord",
    "FsspecArtifactStore",
    "MetadataStore",
    "MetricPoint",
    "ModelRecord",
    "ModelVersionRecord",
    "RegistryStore",
    "RunRecord",
    "RunStatus",
    "SplitRecord",
    "StoredBlob",
    "check_alias",
    "check_name",
    "current_revision",
    "head_revision",
    "parse_model_ref",
    "upgrade",
]
