"""The artifact-store boundary: where artifact bytes live.

A backend stores immutable blobs named by the sha256 of their content. It
must write atomically: a reader sees either no blob or the whole blob under
its final name, never a part of one, whatever happens to the writer.
A new backend is one new file implementing these four methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO


@dataclass(frozen=True)
class StoredBlob:
    """What a backend wrote: the content hash, its size and where it lies."""

    sha256: str
    size: int
    uri: str


class ArtifactStore(ABC):
    """Content-addressed, write-once blob storage."""

    @abstractmethod
    def put(self, chunks: Iterable[bytes]) -> StoredBlob:
        """Write the bytes of ``chunks`` under the sha256 of their content, atomically."""

    @abstractmethod
    def open(self, sha256: str) -> BinaryIO:
        """Open the blob for reading; :class:`~mlcycle.errors.NotFoundError` if absent."""

    @abstractmethod
    def exists(self, sha256: str) -> bool:
        """Whether a blob with this hash is stored."""

    @abstractmethod
    def uri(self, sha256: str) -> str:
        """Where the blob with this hash lies (or would lie)."""
