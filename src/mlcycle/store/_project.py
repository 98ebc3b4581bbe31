"""Where a project folder keeps its metadata and artifacts, opened without its stages.

:class:`~mlcycle.project.Project` opens these stores and adds the stages
(datasets, runs) on top; a process that only reads the registry (a server, a
batch job, ``mlcycle.load``) opens :class:`ProjectStores` alone and never
imports the data stack.

The metadata URL is, first found: ``MLCYCLE_STORE_URL``, the spec's
``store.url``, SQLite at ``.mlcycle/mlcycle.db``. The artifacts' URI:
``MLCYCLE_ARTIFACTS_URI``, the spec's ``artifacts.uri`` (relative to the
project folder), ``.mlcycle/artifacts``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mlcycle import _settings
from mlcycle._system import Closing
from mlcycle.errors import NotFoundError
from mlcycle.plugins import ARTIFACT_STORES
from mlcycle.store._artifacts import Artifacts
from mlcycle.store._metadata import MetadataStore

if TYPE_CHECKING:
    from mlcycle.spec import Spec

__all__ = [
    "NO_PROJECT_HINT",
    "SPEC_FILE",
    "STATE_DIR",
    "ProjectStores",
    "StoreHandle",
    "find_project_root",
]

SPEC_FILE = "mlcycle.yaml"
STATE_DIR = ".mlcycle"

#: What to do when no project is found, said the Python way (the CLI says its own).
NO_PROJECT_HINT = "make one with Project.init(path), or open one with Project.open(path)"


def find_project_root(
    start: str | os.PathLike[str] | None = None, *, hint: str = NO_PROJECT_HINT
) -> Path:
    """The nearest folder at or above ``start`` (default: the current one) with ``mlcycle.yaml``.

    ``hint`` ends the error message: what the caller can do about it.

    Raises:
        NotFoundError: no folder up to the file-system root has one.
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / SPEC_FILE).is_file():
            return folder
    raise NotFoundError(f"no {SPEC_FILE} in {here} or any folder above it: {hint}")


class StoreHandle(Protocol):
    """Anything holding a project's stores: a :class:`ProjectStores` or a ``Project``."""

    @property
    def root(self) -> Path: ...

    @property
    def store(self) -> MetadataStore: ...

    @property
    def artifacts(self) -> Artifacts: ...


@dataclass
class ProjectStores(Closing):
    """The metadata and artifact stores of one project folder. :meth:`close` when done.

    Example:
        >>> import tempfile
        >>> from mlcycle.project import Project
        >>> root = tempfile.mkdtemp()
        >>> Project.init(root, name="demo").close()
        >>> with ProjectStores.open(root) as stores:
        ...     stores.store.registry.list_models()
        []
    """

    root: Path
    store: MetadataStore
    artifacts: Artifacts

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None) -> ProjectStores:
        """The stores of the project at ``path`` or the nearest one above it.

        Raises:
            NotFoundError: there is no project there.
            SpecError: ``mlcycle.yaml`` is invalid.
        """
        from mlcycle.spec import load_spec

        root = find_project_root(path)
        return cls.of(root, load_spec(root / SPEC_FILE))

    @staticmethod
    def locations(root: Path, spec: Spec) -> tuple[str, str]:
        """The metadata store's URL and the artifacts' folder or URL, as :meth:`of` opens them.

        Both are absolute: another process (a Ray worker) that is given them
        opens the same stores wherever its working directory is.
        """
        state = root / STATE_DIR
        url = _settings.store_url() or spec.store.url or f"sqlite:///{state / 'mlcycle.db'}"
        uri = _settings.artifacts_uri() or spec.artifacts.uri or str(state / "artifacts")
        if "://" not in uri and not Path(uri).is_absolute():
            uri = str(root / uri)
        return url, uri

    @classmethod
    def of(cls, root: Path, spec: Spec) -> ProjectStores:
        """The stores that ``spec`` (and the environment) name for the project at ``root``."""
        url, uri = cls.locations(root, spec)
        store = MetadataStore(url)
        blobs = ARTIFACT_STORES.get(spec.artifacts.backend)(uri, **spec.artifacts.options)
        return cls(root, store, Artifacts(blobs, store))

    def close(self) -> None:
        """Release database connections."""
        self.store.close()
