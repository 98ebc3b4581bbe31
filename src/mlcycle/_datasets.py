"""Dataset versions of a project: add, find, load, and the recorded split.

A version is a canonical Parquet snapshot stored as an artifact and named by
the fingerprint of its content and schema: adding the same data twice gives
the same version. Its train/validation/test split is recorded the first time it is
made and read back from the store ever after, so test rows cannot drift into
training when the code or the spec changes later.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from mlcycle.data import DataSource, FrameSource, PreparedData, Schema, prepare, resolve_source
from mlcycle.errors import DataError, NotFoundError, SpecError
from mlcycle.spec import (
    ColumnRole,
    ColumnType,
    DatasetSpec,
    SplitSpec,
    Task,
    format_validation_error,
)
from mlcycle.store import DatasetRecord, DatasetVersionRecord, SplitRecord, check_name

if TYPE_CHECKING:
    import pandas as pd

    from mlcycle.project import Project

__all__ = ["DatasetAdded", "Datasets", "describe_target", "parse_ref"]

_log = logging.getLogger("mlcycle.datasets")

PARQUET = "application/vnd.apache.parquet"
SPLIT_PARTS = ("train", "validation", "test")


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``name``, ``name@latest`` or ``name@3`` → (name, version or None).

    Example:
        >>> parse_ref("iris@2")
        ('iris', 2)
    """
    name, _, version = ref.partition("@")
    if not name:
        raise NotFoundError(f"dataset reference {ref!r}: expected NAME or NAME@VERSION")
    if version in ("", "latest"):
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise NotFoundError(
            f"dataset reference {ref!r}: version {version!r} is not a positive integer or 'latest'"
        )
    return name, int(version)


def _parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", row_group_size=64 * 1024)
    return buffer.getvalue()


def version_fingerprint(prepared: PreparedData) -> str:
    """What names a version: the canonical content and what the columns mean.

    The same rows read with other roles (a column made ``sensitive`` or
    ``ignore``, another target) train different models, so they are another
    version; the same rows and schema from another file are the same version.
    """
    schema = json.dumps(prepared.schema.to_dict(), sort_keys=True, separators=(",", ":"))
    blob = f"mlcycle-dataset-version-v1\n{prepared.fingerprint}\n{schema}".encode()
    return hashlib.sha256(blob).hexdigest()


def _kind(source: FrameSource) -> str:
    return "pyarrow Table" if isinstance(source.obj, pa.Table) else "pandas DataFrame"


def _overridden(
    spec: DatasetSpec,
    name: str,
    target: str | None,
    task: Task | None,
    roles: Mapping[str, ColumnRole] | None,
    types: Mapping[str, ColumnType] | None,
) -> DatasetSpec:
    """The dataset's spec with this call's overrides, validated like the spec itself."""
    if target is None and task is None and not roles and not types:
        return spec
    data = spec.model_dump()
    merged_roles = dict(data["roles"])
    if target is not None:
        # An explicit target replaces the one the spec's roles name.
        merged_roles = {c: r for c, r in merged_roles.items() if r != "target"}
        data["target"] = target
    merged_roles.update(roles or {})
    data["roles"] = merged_roles
    data["types"] = {**data["types"], **(types or {})}
    if task is not None:
        data["task"] = task
    try:
        return DatasetSpec.model_validate(data)
    except ValidationError as exc:
        message = format_validation_error(exc, DatasetSpec).replace("\n", "; ")
        raise SpecError(f"dataset {name!r}: {message}") from None


def _split_key(split: SplitSpec) -> str:
    blob = json.dumps(split.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class DatasetAdded:
    """What :meth:`Datasets.add` did, and where the version stands among its dataset's.

    ``str()`` of it is the summary a person reads (what :meth:`Datasets.add`
    also logs).

    Attributes:
        version: the version the data is (new, or the one with the same content
            and schema).
        created: whether this call made it.
        split: its recorded train/validation/test split.
        latest: the dataset's latest version now, which ``NAME`` without ``@N``
            means (in ``train``, for instance).
        previous: the latest version before this call made a new one (``None``
            when nothing was made or the dataset is new).
    """

    version: DatasetVersionRecord
    created: bool
    split: SplitRecord
    latest: DatasetVersionRecord
    previous: DatasetVersionRecord | None = None

    @property
    def warnings(self) -> list[str]:
        """What looks wrong in the data, and what to do about it."""
        return list(self.version.profile.get("warnings", []))

    @property
    def notes(self) -> list[str]:
        """What was done to the data on the way in (a dropped row index)."""
        return list(self.version.profile.get("notes", []))

    @property
    def is_latest(self) -> bool:
        return self.version.version == self.latest.version

    @property
    def target(self) -> str | None:
        return _target_task(self.version)[0]

    @property
    def task(self) -> str | None:
        return _target_task(self.version)[1]

    @property
    def retargeted(self) -> str | None:
        """A sentence when this call changed what the dataset's latest version predicts."""
        before = self.previous
        if before is None or _target_task(before) == _target_task(self.version):
            return None
        return (
            f"{self.version.ref} predicts {describe_target(self.version)} where "
            f"{before.ref} predicted {describe_target(before)}; {self.version.dataset!r} "
            f"without a version now means @{self.version.version}: name {before.ref} "
            "to keep the old target"
        )

    def __str__(self) -> str:
        version = self.version
        what = f"{version.n_rows} rows, {describe_target(version)}"
        if self.created:
            line = f"added {version.ref} ({what}), now the latest of {version.dataset!r}"
        elif self.is_latest:
            line = f"unchanged: the same data as {version.ref} ({what}), the latest"
        else:
            line = (
                f"unchanged: the same data as {version.ref} ({what}), which is not the latest: "
                f"{self.latest.ref} is ({describe_target(self.latest)})"
            )
        extra = [self.retargeted] if self.retargeted else []
        return "\n".join([line, *extra, *self.notes, *self.warnings])

    def __repr__(self) -> str:
        return (
            f"DatasetAdded({self.version.ref!r}, created={self.created}, "
            f"latest={self.latest.ref!r}, target={self.target!r}, task={self.task!r})"
        )


def _target_task(version: DatasetVersionRecord) -> tuple[str | None, str | None]:
    schema = version.schema if isinstance(version.schema, dict) else {}
    return schema.get("target"), schema.get("task")


def describe_target(version: DatasetVersionRecord) -> str:
    """``target 'y' (binary)``, or ``no target`` for a version without one.

    Example:
        >>> from types import SimpleNamespace
        >>> describe_target(SimpleNamespace(schema={"target": "y", "task": "binary"}))
        "target 'y' (binary)"
    """
    target, task = _target_task(version)
    return f"target {target!r} ({task})" if target is not None else "no target"


class Datasets:
    """The dataset versions of one project (``project.datasets``)."""

    def __init__(self, project: Project) -> None:
        self._project = project
        self._store = project.store

    def add(
        self,
        source: str | DataSource | pd.DataFrame | pa.Table,
        *,
        name: str | None = None,
        target: str | None = None,
        task: Task | None = None,
        roles: Mapping[str, ColumnRole] | None = None,
        types: Mapping[str, ColumnType] | None = None,
        split: SplitSpec | None = None,
    ) -> DatasetAdded:
        """Version the data of ``source`` under ``name``.

        ``source`` is ``sklearn:NAME``, a CSV/Parquet file or folder, a DataFrame or
        Arrow table (then ``name`` is required), or the name of a dataset whose
        ``source`` the spec gives. ``target``, ``task``, ``roles`` and ``types``
        override the dataset's spec for this call, as ``data.datasets.NAME``
        would; ``split`` is the cut of a new version when the spec names none
        for the dataset.

        Returns:
            The version (new, or the existing one with the same content), its
            split, and the dataset's latest version; ``str()`` of it says which
            version the data is and what it predicts, and is logged at INFO.

        Raises:
            InvalidNameError: ``name`` breaks the naming rule (checked before reading).
            DataError: the source is missing, empty or malformed, or a frame
                comes without a name.
            SpecError: the overrides contradict each other or the spec.

        Example:
            >>> import tempfile
            >>> from mlcycle import Project
            >>> with Project.init(tempfile.mkdtemp(), name="demo") as project:
            ...     print(project.datasets.add("sklearn:iris"))
            ...     print(project.datasets.add("sklearn:iris", task="multiclass"))
            added iris@1 (150 rows, target 'target' (multiclass)), now the latest of 'iris'
            unchanged: the same data as iris@1 (150 rows, target 'target' (multiclass)), the latest
        """
        spec_datasets = self._project.spec.data.datasets
        if isinstance(source, str) and source in spec_datasets and name is None:
            configured = spec_datasets[source].source
            if configured is None:
                raise DataError(f"data.datasets.{source}.source is not set in the spec")
            name, source = source, configured
        if name is not None:
            check_name(name, "dataset name")  # before any data is read
        resolved = resolve_source(source, base_dir=self._project.root)
        if name is None and isinstance(resolved, FrameSource):
            raise DataError(
                f"a {_kind(resolved)} has no name to version it under: pass name='...' "
                "(letters, digits, '_', '.' or '-')"
            )
        name = check_name(name or resolved.default_name, "dataset name")
        spec = _overridden(self._project.spec.dataset(name), name, target, task, roles, types)
        prepared = prepare(
            resolved,
            spec,
            name=name,
            base_dir=self._project.root,
            imbalance_ratio=self._project.spec.data.imbalance_ratio,
            max_classes=self._project.spec.data.max_classes,
        )
        known = self._known_versions(prepared.name)
        version, created = self._record(prepared, known)
        if split is not None and name not in spec_datasets:
            spec = spec.model_copy(update={"split": split})
        recorded = self._record_split(version, prepared, spec.split)
        latest = version if created else max(known, key=lambda v: v.version)
        previous = max(known, key=lambda v: v.version) if created and known else None
        added = DatasetAdded(version, created, recorded, latest, previous)
        _log.info("%s", added)
        return added

    def _record(
        self, prepared: PreparedData, known: list[DatasetVersionRecord]
    ) -> tuple[DatasetVersionRecord, bool]:
        fingerprint = version_fingerprint(prepared)
        for version in known:
            if version.fingerprint == fingerprint:
                return version, False
        artifact = self._project.artifacts.put_bytes(_parquet_bytes(prepared.table), PARQUET)
        profile = {**prepared.profile, "content_fingerprint": prepared.fingerprint}
        return self._store.add_dataset_version(
            prepared.name,
            fingerprint=fingerprint,
            artifact_sha256=artifact.sha256,
            source=prepared.source,
            n_rows=prepared.table.num_rows,
            schema=prepared.schema.to_dict(),
            profile=profile,
            actor=self._project.actor,
        )

    def _known_versions(self, name: str) -> list[DatasetVersionRecord]:
        try:
            return self._store.list_dataset_versions(name)
        except NotFoundError:
            return []

    def _record_split(
        self, version: DatasetVersionRecord, prepared: PreparedData, split: SplitSpec
    ) -> SplitRecord:
        key = _split_key(split)
        try:
            return self._store.get_split(version.id, key)
        except NotFoundError:
            pass
        parts = np.empty(prepared.table.num_rows, dtype=np.int8)
        for code, part in enumerate(SPLIT_PARTS):
            parts[prepared.split[part]] = code
        table = pa.table({"part": pa.DictionaryArray.from_arrays(parts, SPLIT_PARTS)})
        artifact = self._project.artifacts.put_bytes(_parquet_bytes(table), PARQUET)
        counts = {part: len(prepared.split[part]) for part in SPLIT_PARTS}
        return self._store.record_split(
            version.id,
            key,
            config=split.model_dump(mode="json"),
            counts=counts,
            artifact_sha256=artifact.sha256,
        )

    def get(self, ref: str) -> DatasetVersionRecord:
        """The version named by ``name[@version]`` (latest when no version is given)."""
        name, version = parse_ref(ref)
        return self._store.get_dataset_version(name, version)

    def versions(self, name: str) -> list[DatasetVersionRecord]:
        return self._store.list_dataset_versions(name)

    def schema(self, ref: str | DatasetVersionRecord) -> Schema:
        version = self.get(ref) if isinstance(ref, str) else ref
        return Schema.from_dict(version.schema)

    def load(self, ref: str | DatasetVersionRecord) -> pa.Table:
        """The canonical table of a version, verified against its recorded sha256."""
        version = self.get(ref) if isinstance(ref, str) else ref
        return pq.read_table(
            io.BytesIO(self._project.artifacts.read_bytes(version.artifact_sha256))
        )

    def split(self, ref: str | DatasetVersionRecord) -> dict[str, np.ndarray[Any, Any]]:
        """Row indices of train/validation/test as first recorded for the version."""
        version = self.get(ref) if isinstance(ref, str) else ref
        record = self._store.get_split(version.id)
        table = pq.read_table(
            io.BytesIO(self._project.artifacts.read_bytes(record.artifact_sha256))
        )
        codes = table.column("part").combine_chunks().indices.to_numpy()
        return {part: np.flatnonzero(codes == i) for i, part in enumerate(SPLIT_PARTS)}

    def load_split(self, ref: str | DatasetVersionRecord) -> dict[str, pa.Table]:
        """The version's table cut into its recorded train/validation/test parts."""
        version = self.get(ref) if isinstance(ref, str) else ref
        table = self.load(version)
        return {part: table.take(rows) for part, rows in self.split(version).items()}

    def list(self) -> list[DatasetRecord]:
        return self._store.list_datasets()
