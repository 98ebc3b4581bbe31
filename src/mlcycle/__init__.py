"""mlcycle: the whole life of a machine-learning model from one project folder.

Example:
    >>> import mlcycle, tempfile
    >>> with mlcycle.Project.init(tempfile.mkdtemp(), name="demo") as project:
    ...     project.datasets.add("sklearn:wine").version.ref
    'wine@1'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcycle._version import __version__
from mlcycle.errors import (
    ConflictError,
    DataError,
    IntegrityError,
    InvalidNameError,
    MlcycleError,
    NotFoundError,
    ParityError,
    SpecError,
    StoreError,
)

if TYPE_CHECKING:
    from mlcycle.project import Project
    from mlcycle.registry import Predictor

__all__ = [
    "ConflictError",
    "DataError",
    "IntegrityError",
    "InvalidNameError",
    "MlcycleError",
    "NotFoundError",
    "ParityError",
    "Project",
    "SpecError",
    "StoreError",
    "__version__",
    "load",
]


def load(ref: str, *, project: Any = None, threads: int | None = None) -> Predictor:
    """Load a registered model (``NAME@champion``) as an ONNX Runtime predictor.

    Every file's sha256 is checked first; torch is not imported. See
    :func:`mlcycle.registry.load`.
    """
    from mlcycle.registry import load as _load

    return _load(ref, project=project, threads=threads)


def __getattr__(name: str) -> Any:
    # Project pulls in the data stack; `import mlcycle.store` or `mlcycle.errors` should not.
    if name == "Project":
        from mlcycle.project import Project

        return Project
    raise AttributeError(f"module 'mlcycle' has no attribute {name!r}")
