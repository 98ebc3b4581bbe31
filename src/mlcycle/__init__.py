"""mlcycle: the whole life of a machine-learning model from one project folder.

Example:
    >>> import mlcycle, tempfile
    >>> with mlcycle.Project.init(tempfile.mkdtemp(), name="demo") as project:
    ...     project.datasets.add("sklearn:wine").version.ref
    'wine@1'
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from mlcycle.errors import (
    ConflictError,
    DataError,
    IntegrityError,
    MlcycleError,
    NotFoundError,
    SpecError,
    StoreError,
)

if TYPE_CHECKING:
    from mlcycle.project import Project

try:
    __version__ = version("mlcycle")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "ConflictError",
    "DataError",
    "IntegrityError",
    "MlcycleError",
    "NotFoundError",
    "Project",
    "SpecError",
    "StoreError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # Project pulls in the data stack; `import mlcycle.store` or `mlcycle.errors` should not.
    if name == "Project":
        from mlcycle.project import Project

        return Project
    raise AttributeError(f"module 'mlcycle' has no attribute {name!r}")
