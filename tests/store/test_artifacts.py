"""Conformance suite of the artifact store: local folder and in-memory fsspec backends."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcycle.errors import IntegrityError, NotFoundError
from mlcycle.store import Artifacts, FsspecArtifactStore, MetadataStore


@pytest.fixture(params=["file", "memory"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return str(tmp_path / "artifacts")
    return f"memory://mlcycle-test-{uuid.uuid4().hex}"


@pytest.fixture
def artifacts(root: str, sqlite_url: str) -> Iterator[Artifacts]:
    store = MetadataStore(sqlite_url)
    yield Artifacts(FsspecArtifactStore(root), store)
    store.close()


def _final_files(artifacts: Artifacts) -> list[str]:
    blobs = artifacts.blobs
    assert isinstance(blobs, FsspecArtifactStore)
    return [p for p in blobs.fs.find(blobs.root) if "/sha256/" in p]


def _tmp_files(artifacts: Artifacts) -> list[str]:
    blobs = artifacts.blobs
    assert isinstance(blobs, FsspecArtifactStore)
    return list(blobs.fs.find(f"{blobs.root}/tmp"))


def _overwrite(artifacts: Artifacts, sha: str, data: bytes) -> None:
    blobs = artifacts.blobs
    assert isinstance(blobs, FsspecArtifactStore)
    with blobs.fs.open(blobs._path(sha), "wb") as handle:
        handle.write(data)


def test_bytes_round_trip_and_are_named_by_their_hash(artifacts: Artifacts) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)  # several read chunks
    record = artifacts.put_bytes(data, "application/octet-stream")
    assert record.sha256 == hashlib.sha256(data).hexdigest()
    assert record.size == len(data)
    assert record.sha256 in record.uri
    assert artifacts.read_bytes(record.sha256) == data
    assert artifacts.verify(record.sha256) == record


def test_the_same_bytes_are_stored_once(artifacts: Artifacts) -> None:
    first = artifacts.put_bytes(b"same", "text/plain")
    second = artifacts.put_bytes(b"same", "text/plain")
    assert first == second
    assert len(_final_files(artifacts)) == 1
    assert _tmp_files(artifacts) == []


def test_a_tampered_artifact_raises_integrity_error(artifacts: Artifacts) -> None:
    record = artifacts.put_bytes(b"weights: 0.1 0.2 0.3", "text/plain")
    _overwrite(artifacts, record.sha256, b"weights: 9.9 0.2 0.3")
    with pytest.raises(IntegrityError) as caught:
        artifacts.read_bytes(record.sha256)
    err = caught.value
    assert err.expected == record.sha256
    assert err.actual == hashlib.sha256(b"weights: 9.9 0.2 0.3").hexdigest()
    assert record.uri in str(err) and record.sha256 in str(err) and err.actual in str(err)
    with pytest.raises(IntegrityError):
        artifacts.verify(record.sha256)


def test_a_copied_stores_integrity_error_names_the_file_it_read(artifacts: Artifacts) -> None:
    """A project copied elsewhere reads its own blobs: the error names those, not the original's."""
    record = artifacts.put_bytes(b"weights: 0.1 0.2 0.3", "text/plain")
    original = artifacts.blobs
    assert isinstance(original, FsspecArtifactStore)
    copied_root = f"{original.root}-copy"
    original.fs.copy(f"{original.root}/sha256", f"{copied_root}/sha256", recursive=True)
    copy = FsspecArtifactStore(
        copied_root if original._local else original.fs.unstrip_protocol(copied_root)
    )
    copied = Artifacts(copy, artifacts.metadata)
    _overwrite(copied, record.sha256, b"weights: 9.9 0.2 0.3")
    assert artifacts.read_bytes(record.sha256) == b"weights: 0.1 0.2 0.3"  # the original is fine
    with pytest.raises(IntegrityError) as caught:
        copied.read_bytes(record.sha256)
    assert caught.value.artifact == copy.uri(record.sha256) != record.uri
    assert copy.uri(record.sha256) in str(caught.value)
    assert record.uri not in str(caught.value)
    with pytest.raises(IntegrityError, match=re.escape(copy.uri(record.sha256))):
        copied.verify(record.sha256)


def test_a_truncated_artifact_raises_integrity_error(artifacts: Artifacts) -> None:
    record = artifacts.put_bytes(b"0123456789" * 100, "text/plain")
    _overwrite(artifacts, record.sha256, b"0123456789" * 50)
    with pytest.raises(IntegrityError, match=f"expected sha256 {record.sha256}"):
        artifacts.read_bytes(record.sha256)


def test_storing_again_repairs_a_tampered_blob(artifacts: Artifacts) -> None:
    record = artifacts.put_bytes(b"good", "text/plain")
    _overwrite(artifacts, record.sha256, b"bad!")
    artifacts.put_bytes(b"good", "text/plain")
    assert artifacts.read_bytes(record.sha256) == b"good"


def test_missing_and_unrecorded_artifacts_are_not_found(artifacts: Artifacts) -> None:
    with pytest.raises(NotFoundError, match="is not recorded"):
        artifacts.read_bytes(hashlib.sha256(b"never stored").hexdigest())
    record = artifacts.put_bytes(b"soon gone", "text/plain")
    blobs = artifacts.blobs
    assert isinstance(blobs, FsspecArtifactStore)
    blobs.fs.rm(blobs._path(record.sha256))
    with pytest.raises(NotFoundError, match="is missing"):
        artifacts.read_bytes(record.sha256)


def test_a_writer_failing_midway_leaves_nothing_behind(artifacts: Artifacts) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"a" * 1000
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        artifacts.put_chunks(chunks(), "text/plain")
    assert _final_files(artifacts) == []
    assert _tmp_files(artifacts) == []


def test_copy_to_writes_a_verified_copy(artifacts: Artifacts, tmp_path: Path) -> None:
    record = artifacts.put_bytes(b"model bytes", "application/octet-stream")
    target = artifacts.copy_to(record.sha256, tmp_path / "out" / "model.bin")
    assert target.read_bytes() == b"model bytes"
    _overwrite(artifacts, record.sha256, b"evil bytes!")
    with pytest.raises(IntegrityError):
        artifacts.copy_to(record.sha256, tmp_path / "out" / "model.bin")
    assert target.read_bytes() == b"model bytes"  # the earlier good copy is untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.bin"]


WRITER = textwrap.dedent(
    """
    import sys, time
    from mlcycle.store import FsspecArtifactStore

    def chunks():
        for _ in range(10_000):
            yield b"x" * 65536
            print("chunk", flush=True)
            time.sleep(0.01)

    FsspecArtifactStore(sys.argv[1]).put(chunks())
    """
)


@pytest.mark.slow
def test_a_killed_writer_never_leaves_a_file_under_a_final_name(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        for _ in range(5):  # it is well into writing
            assert proc.stdout.readline() == "chunk\n"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    time.sleep(0.1)
    assert not (root / "sha256").exists()
    partial = list((root / "tmp").iterdir())
    assert len(partial) == 1 and partial[0].suffix == ".part"
    # The store still works after the crash.
    store = FsspecArtifactStore(root)
    blob = store.put([b"after the crash"])
    with store.open(blob.sha256) as handle:
        assert handle.read() == b"after the crash"
