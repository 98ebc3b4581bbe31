"""``mlcycle.load``: a registered version as an ONNX Runtime predictor, hashes checked."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from mlcycle.registry._predictor import Predictor

if TYPE_CHECKING:
    from mlcycle.project import Project

__all__ = ["load"]


def load(
    ref: str,
    *,
    project: Project | str | os.PathLike[str] | None = None,
    threads: int | None = None,
) -> Predictor:
    """Load ``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS`` from the registry.

    Every file of the version is read back and checked against the sha256
    recorded at registration before anything is used; torch is never imported.

    Args:
        ref: the model reference.
        project: an open project, or a folder to find one from (default: the
            current folder upwards).
        threads: ONNX Runtime intra-op threads (default: the cores, at most 4).

    Raises:
        NotFoundError: no such model, version or alias.
        IntegrityError: a file differs from its recorded hash.
    """
    from mlcycle.project import Project

    opened = project if isinstance(project, Project) else Project.open(project)
    try:
        version = opened.store.registry.get(ref)
        files = {path: opened.artifacts.read_bytes(sha) for path, sha in version.files.items()}
    finally:
        if opened is not project:
            opened.close()
    signature = json.loads(files["signature.json"])
    return Predictor(
        files["model.onnx"], signature, name=version.name, version=version.version, threads=threads
    )
