"""Register a measured variant by hand, whatever its verdict (to deploy or refuse it in a test)."""

from __future__ import annotations

import json

from mlcycle import Project
from mlcycle.compress import CompressionResult
from mlcycle.compress._compress import register_variant
from mlcycle.store import ModelVersionRecord


def register_by_hand(project: Project, result: CompressionResult) -> ModelVersionRecord:
    """The first variant of ``result`` as the next version of the model it compressed."""
    parent = project.store.registry.get(result.model)
    files = {p: project.artifacts.read_bytes(s) for p, s in parent.files.items()}
    return register_variant(
        project,
        parent,
        result.variants[1],
        project.datasets.load_split(parent.lineage["dataset"]),
        json.loads(files["signature.json"]),
        files,
        run_id=result.run_id or "",
    )
