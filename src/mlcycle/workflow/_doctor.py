"""``mlcycle doctor``: what a project resolves to, and whether each part answers.

The same project runs on a laptop (SQLite, a local folder, in-process
training) and on a team's infrastructure (PostgreSQL, S3, a Ray cluster),
chosen per environment by ``MLCYCLE_STORE_URL``, ``MLCYCLE_ARTIFACTS_URI`` and
``RAY_ADDRESS`` without editing the spec. :func:`diagnose` says which of them
this shell gets, where each choice came from, and whether it works: the
metadata store is connected to and its schema revision read (nothing is
migrated), the artifact store gets a small object written, read back and
removed, and the executor's library and cluster address are checked. Each
finding is one line with what to do about it.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from mlcycle import _settings
from mlcycle.errors import MlcycleError
from mlcycle.plugins import ARTIFACT_STORES
from mlcycle.project import SPEC_FILE, STATE_DIR, find_project_root
from mlcycle.spec import Spec, load_spec
from mlcycle.store import HEAD_REVISION, FsspecArtifactStore, MetadataStore, current_revision

__all__ = ["Finding", "diagnose"]


@dataclass(frozen=True)
class Finding:
    """One part of the project's set-up.

    Attributes:
        part: ``project``, ``metadata store``, ``artifact store`` or ``executor``.
        target: what it resolves to (a URL, with any password hidden).
        source: where that came from (an environment variable, a spec field, the default).
        ok: whether it answered as it should.
        detail: what was found, or what is wrong and what to do.
    """

    part: str
    target: str
    source: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip().rstrip(":")


def _metadata(root: Path, spec: Spec) -> Finding:
    if _settings.store_url():
        url, source = _settings.store_url(), "MLCYCLE_STORE_URL"
    elif spec.store.url:
        url, source = spec.store.url, f"{SPEC_FILE} store.url"
    else:
        url, source = f"sqlite:///{root / STATE_DIR / 'mlcycle.db'}", "default"
    assert url is not None
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:
        shown = url.split("@")[-1]
    try:
        store = MetadataStore(url, migrate=False)  # connects on first use: nothing is changed
    except Exception as exc:
        return Finding("metadata store", shown, source, False, f"cannot use the URL: {_short(exc)}")
    try:
        revision = current_revision(store.engine)
    except Exception as exc:
        return Finding(
            "metadata store",
            shown,
            source,
            False,
            f"cannot connect: {_short(exc)}; check that the server runs and the URL's "
            "host, port, user and database",
        )
    finally:
        store.close()
    if revision is None:
        detail = "reachable, empty: the schema is made when the project first opens"
    elif revision == HEAD_REVISION:
        detail = f"reachable, schema at revision {revision} (current)"
    else:
        detail = (
            f"reachable, schema at revision {revision}; this mlcycle migrates it to "
            f"{HEAD_REVISION} when the project opens (or it is newer than this mlcycle)"
        )
    return Finding("metadata store", shown, source, True, detail)


def _artifacts(root: Path, spec: Spec) -> Finding:
    if _settings.artifacts_uri():
        uri, source = _settings.artifacts_uri(), "MLCYCLE_ARTIFACTS_URI"
    elif spec.artifacts.uri:
        uri, source = spec.artifacts.uri, f"{SPEC_FILE} artifacts.uri"
    else:
        uri, source = str(root / STATE_DIR / "artifacts"), "default"
    assert uri is not None
    if "://" not in uri and not Path(uri).is_absolute():
        uri = str(root / uri)
    target = f"{uri} ({spec.artifacts.backend})"
    hint = ""
    if uri.startswith("s3://"):
        hint = (
            "; for S3 check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or a profile), "
            "AWS_DEFAULT_REGION, AWS_ENDPOINT_URL for a non-AWS endpoint, and that the bucket exists"
        )
        if importlib.util.find_spec("s3fs") is None:
            return Finding(
                "artifact store",
                target,
                source,
                False,
                "s3:// needs s3fs: pip install 'mlcycle[s3]'",
            )
    try:
        blobs = ARTIFACT_STORES.get(spec.artifacts.backend)(uri, **spec.artifacts.options)
    except Exception as exc:
        return Finding("artifact store", target, source, False, f"cannot open: {_short(exc)}{hint}")
    if not isinstance(blobs, FsspecArtifactStore):
        return Finding(
            "artifact store", target, source, True, "opened (a plugin store: not probed)"
        )
    probe = f"{blobs.root}/tmp/doctor-{uuid.uuid4().hex}"
    payload = b"mlcycle doctor"
    try:
        blobs.fs.pipe_file(probe, payload)
        back = blobs.fs.cat_file(probe)
        blobs.fs.rm(probe)
    except Exception as exc:
        return Finding(
            "artifact store", target, source, False, f"cannot write and read: {_short(exc)}{hint}"
        )
    if back != payload:
        return Finding(
            "artifact store", target, source, False, "read back other bytes than written"
        )
    return Finding("artifact store", target, source, True, "writable and readable")


def _reachable(address: str) -> str | None:
    """Why ``host:port`` does not accept a TCP connection, or None when it does."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3):
            return None
    except (OSError, ValueError) as exc:
        return _short(exc)


def _executor(spec: Spec) -> Finding:
    name = spec.train.executor
    source = f"{SPEC_FILE} train.executor" if name != "local" else "default"
    if name == "local":
        return Finding(
            "executor", "local", source, True, f"in this process, {os.cpu_count() or 1} CPUs"
        )
    if name != "ray":
        return Finding("executor", name, source, True, "a registered executor (not probed)")
    if importlib.util.find_spec("ray") is None:
        return Finding(
            "executor", "ray", source, False, "ray is not installed: pip install 'mlcycle[ray]'"
        )
    address = os.environ.get("RAY_ADDRESS", "")
    if not address or address == "local":
        return Finding(
            "executor", "ray", source, True, "no RAY_ADDRESS: a local Ray instance starts"
        )
    if address.startswith("ray://"):
        address = address.removeprefix("ray://")
    if address == "auto":
        return Finding(
            "executor",
            "ray (auto)",
            "RAY_ADDRESS",
            True,
            "joins the cluster started on this machine",
        )
    why = _reachable(address)
    if why is not None:
        return Finding(
            "executor",
            f"ray at {address}",
            "RAY_ADDRESS",
            False,
            f"the cluster does not answer: {why}; start it (ray start --head) or fix RAY_ADDRESS",
        )
    return Finding(
        "executor", f"ray at {address}", "RAY_ADDRESS", True, "the cluster's address answers"
    )


def diagnose(path: str | os.PathLike[str] | None = None) -> list[Finding]:
    """What the project at (or above) ``path`` resolves to in this environment, checked.

    Never raises for a broken set-up: a part that fails is a finding with
    ``ok`` False (a project that cannot be found or parsed is the only one).
    """
    try:
        root = find_project_root(path, hint="run 'mlcycle init' or pass --project DIR")
        spec = load_spec(root / SPEC_FILE)
    except MlcycleError as exc:
        return [Finding("project", str(path or Path.cwd()), "", False, str(exc))]
    return [
        Finding("project", str(root), SPEC_FILE, True, f"{spec.project.name}: spec is valid"),
        _metadata(root, spec),
        _artifacts(root, spec),
        _executor(spec),
    ]
