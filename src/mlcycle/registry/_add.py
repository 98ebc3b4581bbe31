"""Store a new model version from its bytes and metadata.

The registry knows what a version is made of, not how it was made: the
registration workflow (:func:`mlcycle.workflow.register`) trains nothing and
exports nothing here; it hands over the graph's bytes, the signature, the
metrics (with the parity verdict), the lineage and the monitoring files, and
this module writes the model card, stores every file as a content-addressed
artifact and records the version with their hashes, in one transaction with
its alias.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlcycle.errors import DataError
from mlcycle.registry._card import build_card
from mlcycle.store import ModelVersionRecord, StoreHandle

__all__ = ["FILES_MEDIA", "VersionDraft", "add_version"]

# Every file a version may hold, with its media type: the one list of them.
FILES_MEDIA = {
    "model.onnx": "application/onnx",
    "weights.safetensors": "application/vnd.safetensors",
    "lightgbm.txt": "text/plain",
    "model.json": "application/json",
    "signature.json": "application/json",
    "metrics.json": "application/json",
    "lineage.json": "application/json",
    "card.md": "text/markdown",
    "card.html": "text/html",
    "reference.parquet": "application/vnd.apache.parquet",
    "ood.json": "application/json",
}
_WRITTEN_HERE = ("signature.json", "metrics.json", "lineage.json", "card.md", "card.html")


@dataclass(frozen=True)
class VersionDraft:
    """What a new version is made of, before it has a number.

    Attributes:
        task: ``binary``, ``multiclass`` or ``regression``.
        onnx: the graph's bytes (``model.onnx``).
        signature: what goes in and comes out (``signature.json``).
        metrics: the figures the card shows; ``parity`` holds the parity verdict.
        lineage: where it came from: run, dataset, spec hash, code and packages.
        dataset: facts about its data for the card (``ref``, ``rows``, ``source``...).
        run_id: the run that made it, if any.
        files: more files to store, by name (``reference.parquet``, ``ood.json``).
        stored: files already stored as artifacts, by name: their sha256 (a run's weights).
    """

    task: str
    onnx: bytes
    signature: Mapping[str, Any]
    metrics: Mapping[str, Any]
    lineage: Mapping[str, Any]
    dataset: Mapping[str, Any]
    run_id: str | None = None
    files: Mapping[str, bytes] = field(default_factory=dict)
    stored: Mapping[str, str] = field(default_factory=dict)


def add_version(
    stores: StoreHandle,
    name: str,
    draft: VersionDraft,
    *,
    actor: str,
    alias: str | None = None,
    description: str | None = None,
    reason: str | None = None,
) -> ModelVersionRecord:
    """Store ``draft``'s files and record it as the next version of ``name``.

    Raises:
        DataError: a file name is not one a version holds, or is given twice.
        InvalidNameError: ``name`` or ``alias`` breaks the naming rule.
    """
    named = [*draft.files, *draft.stored]
    unknown = [p for p in named if p not in FILES_MEDIA or p in (*_WRITTEN_HERE, "model.onnx")]
    if unknown or len(set(named)) != len(named):
        raise DataError(
            f"version files {sorted(named)}: each at most once, and none of "
            f"model.onnx, {', '.join(_WRITTEN_HERE)} (written from the draft itself)"
        )
    card = build_card(
        name=name,
        run_id=draft.run_id,
        task=draft.task,
        description=description,
        dataset=dict(draft.dataset),
        metrics=dict(draft.metrics),
        signature=dict(draft.signature),
        lineage=dict(draft.lineage),
    )

    def put(path: str, data: bytes) -> str:
        return stores.artifacts.put_bytes(data, FILES_MEDIA[path]).sha256

    def as_json(value: Any) -> bytes:
        return json.dumps(value, indent=2, sort_keys=True, default=str).encode()

    files = {
        "model.onnx": put("model.onnx", draft.onnx),
        **draft.stored,
        "signature.json": put("signature.json", as_json(draft.signature)),
        "metrics.json": put("metrics.json", as_json(draft.metrics)),
        "lineage.json": put("lineage.json", as_json(draft.lineage)),
        "card.md": put("card.md", card.markdown().encode()),
        "card.html": put("card.html", card.html().encode()),
    }
    for path, data in draft.files.items():
        files[path] = put(path, data)
    return stores.store.registry.add_version(
        name,
        run_id=draft.run_id,
        task=draft.task,
        metrics=draft.metrics,
        lineage=draft.lineage,
        signature=draft.signature,
        files=files,
        actor=actor,
        description=description,
        alias=alias,
        reason=reason or "registered",
    )
