"""``mlcycle.load``: a registered version as an ONNX Runtime predictor, hashes checked."""

from __future__ import annotations

import json
import os

from mlcycle.registry._predictor import Predictor
from mlcycle.store import ProjectStores, StoreHandle

__all__ = ["load"]


def load(
    ref: str,
    *,
    project: StoreHandle | str | os.PathLike[str] | None = None,
    threads: int | None = None,
) -> Predictor:
    """Load ``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS`` from the registry.

    Every file of the version is read back and checked against the sha256
    recorded at registration before anything is used; torch is never imported.

    Args:
        ref: the model reference.
        project: an open project (or its :class:`~mlcycle.store.ProjectStores`),
            or a folder to find one from (default: the current folder upwards);
            a folder is opened for its stores alone, without the data stack.
        threads: ONNX Runtime intra-op threads (default: the cores, at most 4).

    Raises:
        NotFoundError: no such model, version or alias.
        IntegrityError: a file differs from its recorded hash.
    """
    if project is None or isinstance(project, str | os.PathLike):
        with ProjectStores.open(project) as stores:
            return _read(ref, stores, threads)
    return _read(ref, project, threads)


def _read(ref: str, stores: StoreHandle, threads: int | None) -> Predictor:
    version = stores.store.registry.get(ref)
    blobs = stores.artifacts.read_many(version.files.values())
    files = {path: blobs[sha] for path, sha in version.files.items()}
    signature = json.loads(files["signature.json"])
    return Predictor(
        files["model.onnx"], signature, name=version.name, version=version.version, threads=threads
    )
