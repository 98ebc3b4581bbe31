"""The version to mitigate, read once: its graph, signature, splits, truth and groups."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from mlcycle.errors import DataError, NotFoundError, SpecError
from mlcycle.registry import to_feeds

if TYPE_CHECKING:
    from mlcycle.project import Project
    from mlcycle.store import ModelVersionRecord

__all__ = ["ParentVersion", "group_text", "model_inputs", "read_parent"]


def group_text(column: pa.ChunkedArray | pa.Array, name: str) -> np.ndarray[Any, Any]:
    """The sensitive column as the graph receives it: text, '' for a missing value."""
    signature = {"inputs": [{"name": name, "kind": "categorical"}], "target": None}
    feeds = to_feeds({name: column.to_pylist()}, signature)
    return np.asarray(feeds[name], dtype=object).astype(str)


def model_inputs(table: pa.Table, signature: dict[str, Any]) -> pa.Table:
    return table.select([spec["name"] for spec in signature["inputs"]])


@dataclass
class ParentVersion:
    record: ModelVersionRecord
    files: dict[str, bytes]
    signature: dict[str, Any]
    splits: dict[str, pa.Table]
    classes: list[str]
    positive: int  # index of the positive class
    y: dict[str, np.ndarray[Any, Any]]  # 0/1 truth per split
    groups: dict[str, np.ndarray[Any, Any]]  # sensitive text per split


def read_parent(
    project: Project, ref: str, sensitive: str, positive_label: str | None
) -> ParentVersion:
    record = project.store.registry.get(ref)
    files = {p: project.artifacts.read_bytes(s) for p, s in record.files.items()}
    signature = json.loads(files["signature.json"])
    task = signature["task"]
    if task != "binary":
        raise SpecError(
            f"mitigate: {record.ref} is a {task} model; mitigation applies to binary "
            "classifiers (a positive and a negative class)"
        )
    dataset_ref = record.lineage.get("dataset")
    if not dataset_ref:
        raise NotFoundError(f"mitigate: {record.ref} records no dataset version to mitigate on")
    splits = project.datasets.load_split(project.datasets.get(dataset_ref))
    columns = splits["validation"].column_names
    if sensitive not in columns:
        marked = [c["name"] for c in signature.get("context") or () if c.get("role") == "sensitive"]
        hint = (
            f"sensitive columns of the dataset: {', '.join(marked)}"
            if marked
            else (f"its columns: {', '.join(c for c in columns if c != signature['target'])}")
        )
        raise DataError(f"sensitive: column {sensitive!r} is not in {dataset_ref} ({hint})")
    used = {spec["name"]: spec for spec in signature["inputs"]}.get(sensitive)
    if used is not None and used["kind"] != "categorical":
        raise DataError(
            f"sensitive: {sensitive!r} is a {used['kind']} input of {record.ref}; a sensitive "
            "column the model reads must be categorical (or give it the 'sensitive' role)"
        )
    if sensitive == signature["target"]:
        raise DataError(f"sensitive: {sensitive!r} is the target of {record.ref}")
    classes = list(signature["classes"])
    positive_label = positive_label or project.spec.monitor.fairness.positive_label or classes[1]
    if positive_label not in classes:
        raise SpecError(
            f"positive_label: {positive_label!r} is not a class of {record.ref} "
            f"({', '.join(classes)})"
        )
    target = signature["target"]
    y = {}
    groups = {}
    for split in ("train", "validation", "test"):
        values = np.asarray(splits[split].column(target).to_pylist(), dtype=object).astype(str)
        y[split] = (values == positive_label).astype(np.int64)
        groups[split] = group_text(splits[split].column(sensitive), sensitive)
    seen = sorted(set(groups["validation"].tolist()))
    if len(seen) < 2:
        raise DataError(
            f"sensitive: column {sensitive!r} has {len(seen)} group on the validation rows of "
            f"{dataset_ref} ({', '.join(seen) or 'none'}); mitigation needs at least two"
        )
    return ParentVersion(
        record, files, signature, splits, classes, classes.index(positive_label), y, groups
    )
