"""Metadata (SQL) and artifact (fsspec) stores, and the records the stages share through them."""

from __future__ import annotations

from mlcycle.store._artifacts import Artifacts, FsspecArtifactStore, remote_fs
from mlcycle.store._base import ArtifactStore, MetadataBackend, StoredBlob
from mlcycle.store._engine import (
    HEAD_REVISION,
    current_revision,
    head_revision,
    metadata_backend,
    upgrade,
)
from mlcycle.store._metadata import MetadataStore
from mlcycle.store._names import ALIAS_RULE, MAX_NAME_LENGTH, NAME_RULE, check_alias, check_name
from mlcycle.store._project import (
    NO_PROJECT_HINT,
    SPEC_FILE,
    STATE_DIR,
    ProjectStores,
    StoreHandle,
    find_project_root,
)
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
from mlcycle.store._registry import (
    AuditRecord,
    ModelRecord,
    ModelVersionRecord,
    RegistryStore,
    parse_model_ref,
)
from mlcycle.store._rollout import (
    LoopState,
    Phase,
    Traffic,
    TrafficMode,
    history,
    hold_promotion,
    promotion_hold,
    read_state,
    read_traffic,
    set_traffic,
    write_state,
)
from mlcycle.store._run_pages import RUN_SORTS, RunPage, RunRow

__all__ = [
    "ALIAS_RULE",
    "HEAD_REVISION",
    "MAX_NAME_LENGTH",
    "NAME_RULE",
    "NO_PROJECT_HINT",
    "RUN_SORTS",
    "SPEC_FILE",
    "STATE_DIR",
    "ArtifactRecord",
    "ArtifactStore",
    "Artifacts",
    "AuditRecord",
    "DatasetRecord",
    "DatasetVersionRecord",
    "EventRecord",
    "FsspecArtifactStore",
    "LoopState",
    "MetadataBackend",
    "MetadataStore",
    "MetricPoint",
    "ModelRecord",
    "ModelVersionRecord",
    "Phase",
    "ProjectStores",
    "RegistryStore",
    "RunPage",
    "RunRecord",
    "RunRow",
    "RunStatus",
    "SplitRecord",
    "StoreHandle",
    "StoredBlob",
    "Traffic",
    "TrafficMode",
    "check_alias",
    "check_name",
    "current_revision",
    "find_project_root",
    "head_revision",
    "history",
    "hold_promotion",
    "metadata_backend",
    "parse_model_ref",
    "promotion_hold",
    "read_state",
    "read_traffic",
    "remote_fs",
    "set_traffic",
    "upgrade",
    "write_state",
]
