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
    from mlcycle.registry import ModelVersionRecord, Predictor

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
    "register_model",
]


def load(ref: str, *, project: Any = None, threads: int | None = None) -> Predictor:
    """Load a registered model (``NAME@champion``) as an ONNX Runtime predictor.

    Every file's sha256 is checked first; torch is not imported. See
    :func:`mlcycle.registry.load`.
    """
    from mlcycle.registry import load as _load

    return _load(ref, project=project, threads=threads)


def register_model(
    model: Any,
    *,
    data: str,
    name: str,
    alias: str | None = None,
    project: Any = ".",
    native_check: bool = True,
    description: str | None = None,
) -> ModelVersionRecord:
    """Register a model trained elsewhere as the next version of ``name``, on dataset ``data``.

    ``model``: a torch ``nn.Module``, a scikit-learn estimator or pipeline, a
    LightGBM or XGBoost model, ONNX bytes or an ``.onnx`` path. Its graph is
    checked against the dataset version's schema, against the native model
    on the test rows (parity), and evaluated like a run. See
    :func:`mlcycle.workflow.register_model`.

    Example (in a project with ``breast_cancer@1``)::

        mlcycle.register_model(pipeline, data="breast_cancer@1", name="cancer")
    """
    from mlcycle.workflow import register_model as _register_model

    return _register_model(
        model,
        data=data,
        name=name,
        alias=alias,
        project=project,
        native_check=native_check,
        description=description,
    )


def __getattr__(name: str) -> Any:
    # Project pulls in the data stack; `import mlcycle.store` or `mlcycle.errors` should not.
    if name == "Project":
        from mlcycle.project import Project

        return Project
    raise AttributeError(f"module 'mlcycle' has no attribute {name!r}")
