"""From a source to a dataset version, in one pass of pure functions.

:func:`prepare` is what the store calls before it writes anything: when it
returns, the data has been read, typed, checked, fingerprinted, profiled and
split, so a bad file never leaves a half-made version behind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mlcycle.data._canonical import canonicalize, fingerprint
from mlcycle.data._names import check_feature_names, check_names, drop_row_index
from mlcycle.data._profile import profile_table
from mlcycle.data._schema import MAX_CLASSES, Schema, check_classes, infer_schema
from mlcycle.data._sources import resolve_source
from mlcycle.data._split import make_split
from mlcycle.errors import DataError
from mlcycle.spec import DatasetSpec

__all__ = ["PreparedData", "prepare"]

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class PreparedData:
    """Everything a dataset version is made of, before it is stored.

    Attributes:
        name: the dataset name (``breast_cancer``, a file stem, or as given).
        source: where the rows came from (:meth:`DataSource.describe`).
        table: the rows, in canonical types (see :func:`canonicalize`).
        schema: column types and roles, target, task, classes.
        fingerprint: sha256 of the canonical content; equal data, equal hash.
        profile: JSON-able statistics and warnings (see :func:`profile_table`),
            plus ``split`` (rows per part) and ``notes`` (what was done to the
            data on the way in, such as a dropped row index).
        split: ``train``/``validation``/``test`` → sorted int64 row indices.
    """

    name: str
    source: str
    table: pa.Table
    schema: Schema
    fingerprint: str
    profile: dict[str, Any]
    split: dict[str, np.ndarray[Any, np.dtype[np.int64]]]


def prepare(
    source: object,
    spec: DatasetSpec,
    *,
    name: str | None = None,
    base_dir: Path | None = None,
    imbalance_ratio: float = 3.0,
    max_classes: int = MAX_CLASSES,
) -> PreparedData:
    """Read a source and make it a dataset version: typed, checked, profiled, split.

    Args:
        source: anything :func:`resolve_source` accepts; ``None`` reads
            ``spec.source``.
        spec: the dataset's spec (target, task, roles, types, split).
        name: the dataset name; defaults to the source's ``default_name``.
        base_dir: folder that relative paths are relative to (the project).
        imbalance_ratio: class-size ratio from which the profile warns.
        max_classes: the most classes a classification target may have (and
            never more than half the rows).

    Raises:
        DataError: the source is missing, empty or unknown, the name is not
            ``^[A-Za-z0-9_.-]+$``, a column name cannot be a model input, the
            target has too many classes, or the content is unusable (each
            message says what, where and what was expected).

    Example:
        >>> data = prepare("sklearn:iris", DatasetSpec())
        >>> data.name, data.schema.task, data.table.num_rows, len(data.split["test"])
        ('iris', 'multiclass', 150, 22)
    """
    if source is None:
        source = spec.source
        if source is None:
            raise DataError("no data source: pass one, or set source in the dataset's spec")
    resolved = resolve_source(source, base_dir)
    name = name if name is not None else resolved.default_name
    if not _NAME.match(name):
        raise DataError(
            f"dataset name {name!r}: expected letters, digits, '_', '.' or '-' only "
            "(^[A-Za-z0-9_.-]+$)"
        )
    raw = resolved.read()
    where = resolved.describe()
    if raw.num_rows == 0 or raw.num_columns == 0:
        raise DataError(f"data source {where!r} has no rows")
    named = {*spec.roles, *spec.types, *([spec.target] if spec.target else [])}
    raw, notes = drop_row_index(raw, kept=named)
    ignored = [c for c, role in spec.roles.items() if role == "ignore"]
    check_names(raw.column_names, ignored=ignored, kept=named)
    schema = infer_schema(raw, spec, resolved.hints)
    check_feature_names(schema.features)
    check_classes(schema, raw.num_rows, max_classes)
    table = canonicalize(raw, schema)
    digest = fingerprint(table)
    profile = profile_table(table, schema, imbalance_ratio)
    split = make_split(table, schema, spec.split)
    profile["split"] = {part: len(rows) for part, rows in split.items()}
    profile["notes"] = notes
    return PreparedData(name, where, table, schema, digest, profile, split)
