"""Write an edge bundle: a folder that runs a model on a device with ONNX Runtime alone.

A bundle holds::

    model.onnx       the graph, one input per raw feature column
    model.ort        (optional) the same in ORT format, for ONNX Runtime Mobile
    signature.json   what goes in and comes out (see ``mlcycle.registry._signature``)
    predict.py       a stand-alone script: stdlib, numpy and onnxruntime only
    README.md        how to install and run it, the inputs table, the model card
    manifest.json    format, model, sha256 and size of every other file, requirements

The folder appears whole or not at all: it is built in a hidden folder beside
``dest`` and renamed into place once every file is written and synced.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from mlcycle._system import sync_folder
from mlcycle.edge._latency import load_session, measure_latency_ms
from mlcycle.edge._ort_format import to_ort_format
from mlcycle.edge._readme import render_readme
from mlcycle.edge._requires import MIN_NUMPY, required_onnxruntime
from mlcycle.errors import ConflictError

__all__ = ["FORMAT", "BundleInfo", "write_bundle"]

FORMAT = "mlcycle-edge/1"


@dataclass(frozen=True)
class BundleInfo:
    """What :func:`write_bundle` wrote.

    Attributes:
        path: the bundle folder.
        files: every file in it (``manifest.json`` included) → its sha256.
        size_bytes: the size of all its files together.
        latency_ms: median time to predict one row on this machine (ONNX
            Runtime, one intra-op thread), a reference point for the device.
        ort_file: ``model.ort`` when one was asked for, else ``None``.
    """

    path: Path
    files: dict[str, str]
    size_bytes: int
    latency_ms: float
    ort_file: Path | None


def _predict_script() -> bytes:
    return resources.files("mlcycle.edge").joinpath("_predict_script.py").read_bytes()


def _check_dest(dest: Path) -> None:
    if dest.is_dir() and any(dest.iterdir()):
        raise ConflictError(f"{dest} already exists and is not empty: choose a new folder")
    if dest.exists() and not dest.is_dir():
        raise ConflictError(f"{dest} already exists and is not a folder")


def _write(folder: Path, name: str, content: bytes) -> None:
    with (folder / name).open("wb") as stream:
        stream.write(content)
        stream.flush()
        os.fsync(stream.fileno())


def _summary(signature: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "kind", "dtype", "shape")
    return {
        "task": signature["task"],
        "inputs": [{k: spec[k] for k in keys if k in spec} for spec in signature["inputs"]],
        "outputs": [dict(spec) for spec in signature["outputs"]],
    }


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_bundle(
    dest: Path,
    *,
    onnx_bytes: bytes,
    signature: dict[str, Any],
    model_ref: str,
    card_md: str | None = None,
    ort_format: bool = False,
) -> BundleInfo:
    """Write the edge bundle of one model version to the new folder ``dest``.

    The model is loaded and timed on ONNX Runtime first, so a graph that does
    not load, or whose inputs differ from ``signature``, is refused before
    anything is written.

    Args:
        dest: the bundle folder; it must not exist, or be empty.
        onnx_bytes: the model graph (``model.onnx`` of a registered version).
        signature: its signature (``signature.json``).
        model_ref: what the manifest and README call the model, e.g. ``"fraud@3"``.
        card_md: a model card in Markdown, appended to README.md.
        ort_format: also write ``model.ort`` for ONNX Runtime Mobile.

    Returns:
        The files written, their total size and the one-row latency measured here.

    Raises:
        ConflictError: ``dest`` exists and is not empty, or the model does not
            match the signature.
        MlcycleError: ONNX Runtime cannot load or run the model, or
            ``ort_format`` is asked for and the conversion is unavailable or fails.

    Example (``onnx_bytes`` and ``signature`` from a registered version)::

        info = write_bundle(Path("dist/iris-edge"), onnx_bytes=onnx_bytes,
                            signature=signature, model_ref="iris@3")
        sorted(info.files)
        # ['README.md', 'manifest.json', 'model.onnx', 'predict.py', 'signature.json']
        # then on the device: pip install onnxruntime numpy; python predict.py rows.csv
    """
    dest = Path(dest).absolute()
    _check_dest(dest)
    session = load_session(onnx_bytes, signature)
    latency_ms = measure_latency_ms(session, signature)
    contents = _assemble(onnx_bytes, signature, model_ref, card_md, ort_format, latency_ms)
    _write_atomically(dest, contents)
    return BundleInfo(
        path=dest,
        files={name: hashlib.sha256(data).hexdigest() for name, data in sorted(contents.items())},
        size_bytes=sum(len(data) for data in contents.values()),
        latency_ms=latency_ms,
        ort_file=dest / "model.ort" if ort_format else None,
    )


def _assemble(
    onnx_bytes: bytes,
    signature: dict[str, Any],
    model_ref: str,
    card_md: str | None,
    ort_format: bool,
    latency_ms: float,
) -> dict[str, bytes]:
    """Every file of the bundle, name → content, ``manifest.json`` last."""
    import onnxruntime

    contents: dict[str, bytes] = {
        "model.onnx": onnx_bytes,
        "signature.json": _json(signature),
        "predict.py": _predict_script(),
    }
    if ort_format:
        contents["model.ort"] = to_ort_format(onnx_bytes)
        load_session(contents["model.ort"], signature)  # what we ship must load
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "model": model_ref,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": {},
        "requires": {"onnxruntime": required_onnxruntime(onnx_bytes), "numpy": MIN_NUMPY},
        **_summary(signature),
    }
    readme = render_readme(
        model_ref=model_ref,
        signature=signature,
        manifest={**manifest, "files": dict.fromkeys(contents)},
        latency_ms=latency_ms,
        onnxruntime_version=onnxruntime.__version__,
        card_md=card_md,
    )
    contents["README.md"] = readme.encode("utf-8")
    manifest["files"] = {
        name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        for name, data in sorted(contents.items())
    }
    contents["manifest.json"] = _json(manifest)
    return contents


def _write_atomically(dest: Path, contents: dict[str, bytes]) -> None:
    """Write ``contents`` into a hidden folder beside ``dest``, then rename it to ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be shared
        for name, data in contents.items():
            _write(staging, name, data)
        _check_dest(dest)
        with contextlib.suppress(FileNotFoundError):
            dest.rmdir()  # an empty folder the caller made is taken over
        try:
            staging.rename(dest)
        except OSError as exc:  # someone filled ``dest`` meanwhile
            raise ConflictError(f"{dest} appeared while the bundle was written: {exc}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    sync_folder(dest.parent)
