"""A model's lineage as a tree: dataset version → run → version → derived variants.

Every version records the dataset version and the run it was made from
(``lineage["dataset"]``, ``run_id``); a compressed, pruned, distilled or
mitigated variant also records its parent (``lineage["derived_from"]``:
model, version, method, params). The model page draws this tree as nested
lists on the server: no graph library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mlcycle.store import ModelVersionRecord

__all__ = ["LineageNode", "lineage_tree"]


@dataclass
class LineageNode:
    """A version and the variants made from it; ``derived`` is how it was made from its parent."""

    version: ModelVersionRecord
    derived: dict[str, Any] | None = None
    children: list[LineageNode] = field(default_factory=list)

    @property
    def foreign_parent(self) -> str | None:
        """``MODEL@N`` when the parent is not a version of this model (or no longer exists)."""
        return None if self.derived is None else self.derived.get("_foreign")


def lineage_tree(versions: Sequence[ModelVersionRecord]) -> dict[str, list[LineageNode]]:
    """The versions by dataset version (in order), each a tree of variants under its parent.

    Example:
        >>> lineage_tree([])
        {}
    """
    nodes = {v.version: LineageNode(v, v.lineage.get("derived_from") or None) for v in versions}
    roots: dict[str, list[LineageNode]] = {}
    for v in versions:
        node = nodes[v.version]
        parent = node.derived
        if parent is not None:
            here = parent.get("model") == v.name and parent.get("version") in nodes
            if here and parent["version"] != v.version:
                nodes[parent["version"]].children.append(node)
                continue
            node.derived = {**parent, "_foreign": f"{parent.get('model')}@{parent.get('version')}"}
        roots.setdefault(str(v.lineage.get("dataset") or "unknown dataset"), []).append(node)
    return roots
