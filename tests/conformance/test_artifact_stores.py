"""Every registered artifact store runs the conformance suite; a new one is one class."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, ClassVar

import pytest
import yaml

from mlcycle import Project
from mlcycle.errors import NotFoundError, SpecError
from mlcycle.plugins import ARTIFACT_STORES
from mlcycle.spec import parse_spec
from mlcycle.store import ArtifactStore, FsspecArtifactStore, StoredBlob
from tests._s3 import CREDENTIALS, s3_server
from tests.conformance.artifact_stores import ArtifactStoreConformance


class TestFsspecFolder(ArtifactStoreConformance):
    name = "fsspec"

    def corrupt(self, store: ArtifactStore, sha256: str) -> None:
        Path(store.uri(sha256)).write_bytes(b"tampered")

    def leftovers(self, store: ArtifactStore) -> list[str]:
        assert isinstance(store, FsspecArtifactStore)
        return [str(p) for p in Path(store.root, "tmp").iterdir()]


class TestFsspecMemory(ArtifactStoreConformance):
    """The same store on fsspec's in-memory filesystem: a URL, not a folder."""

    name = "fsspec"

    def uri(self, tmp_path: Path) -> str:
        return f"memory://{tmp_path.name}/blobs"

    def corrupt(self, store: ArtifactStore, sha256: str) -> None:
        assert isinstance(store, FsspecArtifactStore)
        store.fs.pipe_file(store._path(sha256), b"tampered")

    def leftovers(self, store: ArtifactStore) -> list[str]:
        assert isinstance(store, FsspecArtifactStore)
        return list(store.fs.ls(f"{store.root}/tmp"))


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with s3_server() as url:
        yield url


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The usual AWS variables, pointing at the loopback S3 API."""
    for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(name, value)
    return s3_endpoint


@pytest.mark.usefixtures("s3_env")
class TestFsspecS3(ArtifactStoreConformance):
    """The same store on a real S3 API (moto's server on loopback), found by the AWS variables."""

    name = "fsspec"

    def uri(self, tmp_path: Path) -> str:
        bucket = "mlc-" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:16]
        return f"s3://{bucket}/team/artifacts"

    def corrupt(self, store: ArtifactStore, sha256: str) -> None:
        assert isinstance(store, FsspecArtifactStore)
        store.fs.pipe_file(store._path(sha256), b"tampered")

    def leftovers(self, store: ArtifactStore) -> list[str]:
        assert isinstance(store, FsspecArtifactStore)
        store.fs.invalidate_cache()
        try:
            return list(store.fs.ls(f"{store.root}/tmp", refresh=True))
        except FileNotFoundError:
            return []

    def test_another_client_sees_what_one_wrote(self, tmp_path: Path) -> None:
        """No listing cache hides a blob another machine stored (or deleted) meanwhile."""
        first, second = self.make(tmp_path), self.make(tmp_path)
        absent = hashlib.sha256(b"later").hexdigest()
        assert not second.exists(absent)
        blob = first.put([b"later"])
        assert second.exists(blob.sha256)
        with second.open(blob.sha256) as handle:
            assert handle.read() == b"later"
        assert first.delete(blob.sha256)
        assert not second.exists(blob.sha256)


def test_every_built_in_runs_the_suite() -> None:
    covered = {cls.name for cls in ArtifactStoreConformance.__subclasses__()}
    assert set(ARTIFACT_STORES.names()) <= covered


class DictStore(ArtifactStore):
    """A toy artifact store, as a user would write it in one file: blobs in a dict.

    A blob is stored only once all of its bytes arrived, so a failed write leaves nothing.
    """

    spaces: ClassVar[dict[str, dict[str, bytes]]] = {}

    def __init__(self, uri: str) -> None:
        self.name = uri
        self.blobs = self.spaces.setdefault(uri, {})

    def put(self, chunks: Iterable[bytes]) -> StoredBlob:
        data = b"".join(chunks)
        sha256 = hashlib.sha256(data).hexdigest()
        self.blobs.setdefault(sha256, data)
        return StoredBlob(sha256, len(data), self.uri(sha256))

    def open(self, sha256: str) -> BinaryIO:
        if sha256 not in self.blobs:
            raise NotFoundError(f"artifact {sha256} is missing from {self.name}")
        return io.BytesIO(self.blobs[sha256])

    def exists(self, sha256: str) -> bool:
        return sha256 in self.blobs

    def uri(self, sha256: str) -> str:
        return f"{self.name}/{sha256}"


@pytest.fixture
def dict_store() -> Iterator[type[DictStore]]:
    ARTIFACT_STORES.register("dict")(DictStore)
    yield DictStore
    ARTIFACT_STORES.unregister("dict")
    DictStore.spaces.clear()


@pytest.mark.usefixtures("dict_store")
class TestDictStore(ArtifactStoreConformance):
    """A new artifact store: its class and one registration line, and it passes the suite."""

    name = "dict"

    def corrupt(self, store: ArtifactStore, sha256: str) -> None:
        assert isinstance(store, DictStore)
        store.blobs[sha256] = b"tampered"

    def test_a_project_keeps_its_artifacts_there(self, tmp_path: Path) -> None:
        root = tmp_path / "p"
        Project.init(root, name="p").close()
        spec = {"artifacts": {"backend": "dict", "uri": "dict://team-space"}}
        (root / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
        with Project.open(root) as project:
            added = project.datasets.add("sklearn:iris")
            table = project.datasets.load(added.version.ref)
        assert table.num_rows == 150
        assert added.version.artifact_sha256 in DictStore.spaces["dict://team-space"]


def test_an_unregistered_store_is_refused_with_the_registered_names() -> None:
    with pytest.raises(SpecError, match="unknown artifact store; registered: fsspec"):
        parse_spec({"artifacts": {"backend": "dict"}})


def test_an_s3_store_opened_after_the_endpoint_moved_uses_the_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A long-lived process whose variables change (a new endpoint, a rotated key) gets a
    client made with them, not the one fsspec cached under the old ones."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with s3_server() as first:
        monkeypatch.setenv("AWS_ENDPOINT_URL", first)
        FsspecArtifactStore("s3://moved/blobs").put([b"before"])
    with s3_server() as second:
        monkeypatch.setenv("AWS_ENDPOINT_URL", second)
        store = FsspecArtifactStore("s3://moved/blobs")
        blob = store.put([b"after"])
        assert store.exists(blob.sha256)
