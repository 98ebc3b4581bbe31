"""The conformance suite of artifact stores (:class:`mlcycle.store.ArtifactStore`).

Subclass :class:`ArtifactStoreConformance`, name the registered store, and
say how to damage a stored blob behind the store's back (:meth:`corrupt`) and
what a write leaves besides blobs (:meth:`leftovers`: temporary files).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from mlcycle.errors import IntegrityError, NotFoundError
from mlcycle.plugins import ARTIFACT_STORES
from mlcycle.spec import parse_spec
from mlcycle.store import Artifacts, ArtifactStore, MetadataStore, ProjectStores


class WriteFailed(Exception):
    """What the writer of a half-sent blob raises."""


class ArtifactStoreConformance:
    """What every artifact store must do: round trips, verified reads, atomic writes."""

    name: ClassVar[str]

    def uri(self, tmp_path: Path) -> str:
        return str(tmp_path / "blobs")

    def make(self, tmp_path: Path) -> ArtifactStore:
        return ARTIFACT_STORES.get(self.name)(self.uri(tmp_path))

    def corrupt(self, store: ArtifactStore, sha256: str) -> None:
        """Change the stored bytes of ``sha256`` without the store knowing."""
        raise NotImplementedError

    def leftovers(self, store: ArtifactStore) -> list[str]:
        """Whatever a write left besides complete blobs (temporary files)."""
        return []

    def test_is_registered_and_chosen_by_the_spec(self, tmp_path: Path) -> None:
        assert isinstance(self.make(tmp_path), ArtifactStore)
        spec = parse_spec({"artifacts": {"backend": self.name, "uri": self.uri(tmp_path)}})
        with ProjectStores.of(tmp_path, spec) as stores:
            assert type(stores.artifacts.blobs) is ARTIFACT_STORES.get(self.name)

    def test_put_and_open_round_trip(self, tmp_path: Path) -> None:
        store = self.make(tmp_path)
        chunks = [b"hello ", b"", b"world", bytes(range(256)) * 5000]
        data = b"".join(chunks)
        blob = store.put(iter(chunks))
        assert blob.sha256 == hashlib.sha256(data).hexdigest() and blob.size == len(data)
        assert store.exists(blob.sha256) and blob.uri == store.uri(blob.sha256)
        with store.open(blob.sha256) as handle:
            assert handle.read() == data
        assert store.put([data]) == blob  # the same bytes again: the same blob
        assert self.leftovers(store) == []

    def test_an_absent_blob_is_not_found(self, tmp_path: Path) -> None:
        store = self.make(tmp_path)
        absent = hashlib.sha256(b"never stored").hexdigest()
        assert not store.exists(absent)
        with pytest.raises(NotFoundError):
            store.open(absent)

    def test_reads_check_the_sha256(self, tmp_path: Path) -> None:
        metadata = MetadataStore("sqlite://")
        artifacts = Artifacts(self.make(tmp_path), metadata)
        record = artifacts.put_bytes(b"the model", "application/octet-stream")
        assert artifacts.read_bytes(record.sha256) == b"the model"
        self.corrupt(artifacts.blobs, record.sha256)
        with pytest.raises(IntegrityError, match=record.sha256):
            artifacts.read_bytes(record.sha256)
        with pytest.raises(IntegrityError):
            artifacts.verify(record.sha256)
        metadata.close()

    def test_many_reads_at_once_are_each_checked(self, tmp_path: Path) -> None:
        artifacts = Artifacts(self.make(tmp_path), MetadataStore("sqlite://"))
        records = [artifacts.put_bytes(f"file {i}".encode() * 1000, "text/plain") for i in range(6)]
        shas = [r.sha256 for r in records]
        got = artifacts.read_many([*shas, shas[0]])  # a hash twice is read once
        assert list(got) == shas
        assert all(got[r.sha256] == artifacts.read_bytes(r.sha256) for r in records)
        self.corrupt(artifacts.blobs, shas[3])
        with pytest.raises(IntegrityError, match=shas[3]):
            artifacts.read_many(shas)
        absent = hashlib.sha256(b"never stored").hexdigest()
        with pytest.raises(NotFoundError):
            artifacts.read_many([shas[0], absent])

    def test_a_failed_write_leaves_no_blob(self, tmp_path: Path) -> None:
        store = self.make(tmp_path)
        sent = b"x" * 100_000

        def broken() -> Iterator[bytes]:
            yield sent
            raise WriteFailed("the connection dropped")

        with pytest.raises(WriteFailed):
            store.put(broken())
        half = hashlib.sha256(sent).hexdigest()
        assert not store.exists(half)
        with pytest.raises(NotFoundError):
            store.open(half)
        assert self.leftovers(store) == []
        assert store.put([sent]).sha256 == half  # and the store still works

    def test_delete_removes_a_blob_or_says_it_kept_it(self, tmp_path: Path) -> None:
        store = self.make(tmp_path)
        kept = store.put([b"stays"])
        gone = store.put([b"goes"])
        if store.delete(gone.sha256):
            assert not store.exists(gone.sha256)
            assert not store.delete(gone.sha256)  # deleting again: nothing to delete
        else:  # a write-once store keeps its blobs
            assert store.exists(gone.sha256)
        assert store.exists(kept.sha256)
        with store.open(kept.sha256) as handle:
            assert handle.read() == b"stays"
