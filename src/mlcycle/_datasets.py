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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlcycle.data import DataSource, PreparedData, Schema, prepare, resolve_source
from mlcycle.errors import DataError, NotFoundError
from mlcycle.spec import SplitSpec
from mlcycle.store import DatasetRecord, DatasetVersionRecord, SplitRecord, check_name

if TYPE_CHECKING:
    import pandas as pd

    from mlcycle.project import Project

__all__ = ["DatasetAdded", "Datasets", "parse_ref"]

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


def _split_key(split: SplitSpec) -> str:
    blob = json.dumps(split.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class DatasetAdded:
    """What :meth:`Datasets.add` did."""

    version: DatasetVersionRecord
    created: bool
    split: SplitRecord

    @property
    def warnings(self) -> list[str]:
        return list(self.version.profile.get("warnings", []))


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
    ) -> DatasetAdded:
        """Version the data of ``source`` under ``name``.

        ``source`` is ``sklearn:NAME``, a CSV/Parquet file or folder, a DataFrame or
        Arrow table, or the name of a dataset whose ``source`` the spec gives.

        Returns:
            The version (new, or the existing one with the same content) and its split.

        Raises:
            InvalidNameError: ``name`` breaks the naming rule (checked before reading).
            DataError: the source is missing, empty or malformed.
        """
        spec_datasets = self._project.spec.data.datasets
        if isinstance(source, str) and source in spec_datasets and name is None:
            configured = spec_datasets[source].source
            if configured is None:
                raise DataError(f"data.datasets.{source}.source is not set in the spec")
            name, source = source, configured
        resolved = resolve_source(source, base_dir=self._project.root)
        name = check_name(name or resolved.default_name, "dataset name")
        spec = self._project.spec.dataset(name)
        if target is not None:
            spec = spec.model_copy(update={"target": target})
        prepared = prepare(
            resolved,
            spec,
            name=name,
            base_dir=self._project.root,
            imbalance_ratio=self._project.spec.data.imbalance_ratio,
        )
        version, created = self._record(prepared)
        split = self._record_split(version, prepared, spec.split)
        return DatasetAdded(version=version, created=created, split=split)

    def _record(self, prepared: PreparedData) -> tuple[DatasetVersionRecord, bool]:
        fingerprint = version_fingerprint(prepared)
        for known in self._known_versions(prepared.name):
            if known.fingerprint == fingerprint:
                return known, False
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
