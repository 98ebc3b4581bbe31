"""The project: one folder holding ``mlcycle.yaml`` and ``.mlcycle/``.

:class:`Project` is the façade that the CLI and the Python API share: it
reads and validates the spec, opens the metadata store (migrating it when it
was made by an older mlcycle) and the artifact store, and exposes each stage.

Example:
    >>> import tempfile
    >>> project = Project.init(tempfile.mkdtemp(), name="demo")
    >>> version = project.datasets.add("sklearn:iris").version
    >>> version.ref, version.n_rows
    ('iris@1', 150)
    >>> project.close()
"""

from __future__ import annotations

import os
from pathlib import Path

from mlcycle import _settings
from mlcycle._datasets import Datasets
from mlcycle._runs import Runs
from mlcycle._spec_template import spec_template
from mlcycle._system import Closing, write_atomic
from mlcycle.errors import ConflictError, SpecError
from mlcycle.spec import Spec, load_spec
from mlcycle.store import (
    NO_PROJECT_HINT,
    SPEC_FILE,
    STATE_DIR,
    ProjectStores,
    find_project_root,
)

__all__ = ["NO_PROJECT_HINT", "SPEC_FILE", "STATE_DIR", "Project", "find_project_root"]


class Project(Closing):
    """An opened mlcycle project. Use :meth:`open` or :meth:`init`, then :meth:`close`.

    Attributes:
        root: the project folder.
        spec: the validated, immutable spec.
        store: the metadata store.
        artifacts: the artifact store, bound to the metadata store.
        datasets: dataset versions (add, list, load, splits).
        runs: tracked runs.
    """

    def __init__(self, root: Path, spec: Spec) -> None:
        self.root = root
        self.spec = spec
        self.actor = _settings.actor()
        stores = ProjectStores.of(root, spec)
        self.store = stores.store
        self.artifacts = stores.artifacts
        self.datasets = Datasets(self)
        self.runs = Runs(self)

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None) -> Project:
        """Open the project at ``path`` or the nearest one above it.

        Raises:
            NotFoundError: there is no project there.
            SpecError: ``mlcycle.yaml`` is invalid.
        """
        root = find_project_root(path)
        spec = load_spec(root / SPEC_FILE)
        return cls(root, spec)

    @classmethod
    def init(cls, path: str | os.PathLike[str] = ".", *, name: str | None = None) -> Project:
        """Create a project in ``path`` (made if needed) and open it.

        Raises:
            ConflictError: ``path`` already holds a project.
            SpecError: ``name`` is not a valid project name.
        """
        root = Path(path).resolve()
        spec_file = root / SPEC_FILE
        if spec_file.exists():
            raise ConflictError(f"{spec_file} already exists: this folder is already a project")
        name = name or root.name or "mlcycle-project"
        if not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise SpecError(f"project.name: {name!r} may hold only letters, digits, '_', '-', '.'")
        root.mkdir(parents=True, exist_ok=True)
        (root / STATE_DIR).mkdir(exist_ok=True)
        (root / STATE_DIR / ".gitignore").write_text("*\n", encoding="utf-8")
        text = spec_template(name)
        write_atomic(spec_file, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        project = cls.open(root)
        project.store.record_event(
            "project.created", "project", name, actor=project.actor, details={"root": str(root)}
        )
        return project

    def close(self) -> None:
        """Release database connections."""
        self.store.close()

    def __repr__(self) -> str:
        return f"Project({str(self.root)!r}, store={self.store.backend})"
