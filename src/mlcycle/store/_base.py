"""The store's two boundaries: where artifact bytes live, and which database holds metadata.

An :class:`ArtifactStore` keeps immutable blobs named by the sha256 of their
content. It must write atomically: a reader sees either no blob or the whole
blob under its final name, never a part of one, whatever happens to the
writer. A :class:`MetadataBackend` is a database at the engine level: the
tuned engine, the one statement whose SQL differs, the migration lock. Each
is registered by name in :mod:`mlcycle.plugins`; a new backend is one new
file implementing these few methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.engine import URL, Connection
    from sqlalchemy.sql.expression import Executable


@dataclass(frozen=True)
class StoredBlob:
    """What a backend wrote: the content hash, its size and where it lies."""

    sha256: str
    size: int
    uri: str


class ArtifactStore(ABC):
    """Content-addressed, write-once blob storage.

    Registered by name in :data:`mlcycle.plugins.ARTIFACT_STORES` (the
    spec's ``artifacts.backend``) and constructed with the artifacts URI
    (``artifacts.uri``, a folder or URL).
    """

    def __init__(self, uri: str) -> None:  # noqa: B027 - a store may need nothing more
        """Open the store at ``uri`` (made absolute against the project when a relative path)."""

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

    def delete(self, sha256: str) -> bool:
        """Remove the blob (the metadata store no longer refers to it); whether it was removed.

        Optional: the default keeps every blob (a write-once bucket) and says so.
        """
        return False


class MetadataBackend(ABC):
    """A database the metadata store runs on, registered under its SQLAlchemy backend name.

    The name is what a store URL starts with (``sqlite``, ``postgresql``); the
    store's tables, migrations and transactions are the same SQLAlchemy code
    on every backend, so a backend supplies only what differs. Constructed
    without arguments.
    """

    @property
    def title(self) -> str:
        """The database's name in messages (the class name without ``Backend``)."""
        return type(self).__name__.removesuffix("Backend")

    @abstractmethod
    def create_engine(self, url: URL) -> Engine:
        """An engine for ``url``, tuned for several processes using the database at once.

        Raises:
            StoreError: the backend cannot be used (a driver is not installed).
        """

    @abstractmethod
    def insert_ignore(self, table: Any, values: Mapping[str, Any]) -> Executable:
        """``INSERT`` of one row that does nothing when its key exists already."""

    def lock_migrations(self, connection: Connection) -> None:  # noqa: B027 - optional hook
        """Serialise migrations of two processes, inside ``connection``'s transaction.

        The default does nothing: for a database whose write transactions
        exclude each other from ``BEGIN`` (SQLite here) that is the lock.
        """

    @contextmanager
    def lease(self, engine: Engine, key: str) -> Iterator[bool]:
        """Hold ``key`` against other processes on other machines while the block runs.

        Yields whether it is held (False: another process holds it). It must be
        released if the holder dies. The default yields True: a database on one
        machine (SQLite) relies on the caller's file lock.
        """
        yield True
