"""Artifacts: content-addressed blobs through fsspec, verified on every read.

Bytes go to ``<root>/tmp/<random>.part`` while their sha256 is computed,
are flushed to disk, then renamed to ``<root>/sha256/ab/cd/<hash>``: a crash
leaves at worst a stray ``.part`` file, never a half-written artifact under a
final name. On S3 (``s3://bucket/prefix``, with the ``s3`` extra) the
temporary key is a multipart upload that exists only once complete, and the
rename a server-side copy, which writes the final key whole or not at all. The metadata store records each artifact's hash and size; reading
recomputes the hash and raises :class:`~mlcycle.errors.IntegrityError` on any
difference, so a tampered or truncated file is never used.

Example:
    >>> import tempfile
    >>> from mlcycle.store import MetadataStore
    >>> artifacts = Artifacts(FsspecArtifactStore(tempfile.mkdtemp()), MetadataStore("sqlite://"))
    >>> record = artifacts.put_bytes(b"hello", "text/plain")
    >>> artifacts.read_bytes(record.sha256)
    b'hello'
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import fsspec

from mlcycle.errors import IntegrityError, NotFoundError, StoreError
from mlcycle.store._base import ArtifactStore, StoredBlob
from mlcycle.store._metadata import MetadataStore
from mlcycle.store._records import ArtifactRecord

__all__ = ["Artifacts", "FsspecArtifactStore", "remote_fs"]

CHUNK = 1 << 20


class FsspecArtifactStore(ArtifactStore):
    """Blobs under a folder or any fsspec URL (``/data/artifacts``, ``s3://bucket/prefix``).

    Args:
        root: the folder or URL.
        storage_options: passed to the fsspec filesystem (credentials, endpoint).
    """

    def __init__(self, root: str | os.PathLike[str], **storage_options: Any) -> None:
        fs, path = remote_fs(str(root), **storage_options)
        self.fs = fs
        self.root = path.rstrip("/")
        self._local = "file" in (
            (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
        )
        self.fs.makedirs(f"{self.root}/tmp", exist_ok=True)

    def _path(self, sha256: str) -> str:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise NotFoundError(f"{sha256!r} is not a sha256 hex digest")
        return f"{self.root}/sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def uri(self, sha256: str) -> str:
        path = self._path(sha256)
        return path if self._local else self.fs.unstrip_protocol(path)

    def exists(self, sha256: str) -> bool:
        path = self._path(sha256)
        if not self._local:  # another machine may have stored or deleted it since a listing
            self.fs.invalidate_cache(path)
        return bool(self.fs.exists(path))

    def open(self, sha256: str) -> BinaryIO:
        try:
            handle: BinaryIO = self.fs.open(self._path(sha256), "rb")
        except FileNotFoundError:
            raise NotFoundError(f"artifact {sha256} is missing from {self.root}") from None
        return handle

    def delete(self, sha256: str) -> bool:
        path = self._path(sha256)
        if not self.fs.exists(path):
            return False
        self.fs.rm(path)
        return True

    def put(self, chunks: Iterable[bytes]) -> StoredBlob:
        tmp = f"{self.root}/tmp/{uuid.uuid4().hex}.part"
        digest = hashlib.sha256()
        size = 0
        try:
            with self.fs.open(tmp, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                if self._local:
                    out.flush()
                    os.fsync(out.fileno())
            sha256 = digest.hexdigest()
            final = self._path(sha256)
            if self.fs.exists(final) and _sha256_of(self.fs, final) == sha256:
                self.fs.rm(tmp)
            else:
                self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
                self.fs.mv(tmp, final)
        except BaseException:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            raise
        return StoredBlob(sha256=sha256, size=size, uri=self.uri(sha256))


_SHARED = ("file", "local", "memory")  # one filesystem per process by nature


def remote_fs(url: str, **storage_options: Any) -> tuple[Any, str]:
    """fsspec's filesystem and path for ``url``, a client of its own for a remote one.

    fsspec reuses one filesystem per protocol and options; an S3 client made
    earlier in the process keeps the endpoint and credentials the
    environment had then (a test's stopped server, a rotated key). A remote
    store gets a client made now instead.
    """
    protocol = fsspec.core.split_protocol(url)[0] or "file"
    if protocol not in _SHARED:
        storage_options.setdefault("skip_instance_cache", True)
    fs, path = fsspec.core.url_to_fs(url, **storage_options)
    return fs, str(path)


def _sha256_of(fs: Any, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _read_chunks(handle: BinaryIO) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK):
        yield chunk


class Artifacts:
    """Blob storage bound to the metadata store that vouches for each blob's hash."""

    def __init__(self, blobs: ArtifactStore, metadata: MetadataStore) -> None:
        self.blobs = blobs
        self.metadata = metadata

    def put_chunks(self, chunks: Iterable[bytes], media_type: str) -> ArtifactRecord:
        """Store bytes and record them; storing the same bytes again is a no-op."""
        blob = self.blobs.put(chunks)
        return self.metadata.record_artifact(blob.sha256, blob.size, blob.uri, media_type)

    def put_bytes(self, data: bytes, media_type: str) -> ArtifactRecord:
        return self.put_chunks([data], media_type)

    def put_file(self, path: str | os.PathLike[str], media_type: str) -> ArtifactRecord:
        with open(path, "rb") as handle:
            return self.put_chunks(_read_chunks(handle), media_type)

    def read_bytes(self, sha256: str) -> bytes:
        """The artifact's bytes, after checking them against the recorded sha256.

        Raises:
            NotFoundError: no such artifact is recorded, or its blob is gone.
            IntegrityError: the blob's content differs from what was recorded.
        """
        record = self.metadata.get_artifact(sha256)
        buffer = io.BytesIO()
        digest = hashlib.sha256()
        with self.blobs.open(sha256) as handle:
            for chunk in _read_chunks(handle):
                digest.update(chunk)
                buffer.write(chunk)
        self._check(record, digest.hexdigest(), buffer.tell())
        return buffer.getvalue()

    def read_many(self, sha256s: Iterable[str]) -> dict[str, bytes]:
        """Several artifacts' bytes by hash, each checked as :meth:`read_bytes` checks it.

        The records are read first, in this thread; the blobs are then fetched
        side by side (a version's ten small files from S3 cost one round trip
        instead of ten).

        Raises:
            NotFoundError: an artifact is not recorded, or its blob is gone.
            IntegrityError: a blob's content differs from what was recorded.
        """
        wanted = list(dict.fromkeys(sha256s))
        records = {sha: self.metadata.get_artifact(sha) for sha in wanted}

        def fetch(sha256: str) -> bytes:
            with self.blobs.open(sha256) as handle:
                return b"".join(_read_chunks(handle))

        if len(wanted) > 1:
            with ThreadPoolExecutor(max_workers=min(8, len(wanted))) as pool:
                blobs = dict(zip(wanted, pool.map(fetch, wanted), strict=True))
        else:
            blobs = {sha: fetch(sha) for sha in wanted}
        for sha, data in blobs.items():
            self._check(records[sha], hashlib.sha256(data).hexdigest(), len(data))
        return blobs

    def verify(self, sha256: str) -> ArtifactRecord:
        """Check a stored artifact without keeping its bytes."""
        record = self.metadata.get_artifact(sha256)
        digest = hashlib.sha256()
        size = 0
        with self.blobs.open(sha256) as handle:
            for chunk in _read_chunks(handle):
                digest.update(chunk)
                size += len(chunk)
        self._check(record, digest.hexdigest(), size)
        return record

    def copy_to(self, sha256: str, dest: str | os.PathLike[str]) -> Path:
        """Write a verified copy to ``dest`` (atomically: a temp file, then rename)."""
        target = Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            tmp.write_bytes(self.read_bytes(sha256))
            tmp.replace(target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return target

    def _check(self, record: ArtifactRecord, actual: str, size: int) -> None:
        # Name the blob that was read: record.uri is where it was first written, which
        # for a copied or moved project (or another machine's checkout) is another file.
        if actual != record.sha256:
            raise IntegrityError(self.blobs.uri(record.sha256), record.sha256, actual)
        if size != record.size:  # pragma: no cover - a different size changes the hash
            where = self.blobs.uri(record.sha256)
            raise StoreError(f"artifact {where}: {size} bytes, expected {record.size}")
