"""Errors raised by mlcycle.

Every error mlcycle raises on purpose derives from one root, so that callers
can catch them all, and the CLI turns each into one red line and exit code 1.
Anything else is a bug and keeps its traceback.

::

    MlcycleError
    ├── SpecError (ValueError)          mlcycle.yaml is invalid, or a flag overriding it
    ├── DataError (ValueError)          a data source is missing, empty or malformed
    ├── InvalidNameError (ValueError)   a model, dataset or alias name breaks the naming rule
    ├── StoreError                      the metadata or artifact store failed
    │   └── IntegrityError              an artifact's bytes do not match its recorded sha256
    ├── NotFoundError (LookupError)     a project, dataset, version, run or artifact is unknown
    ├── ConflictError                   the request clashes with what is recorded
    └── ParityError                     an exported graph disagrees with the model it came from

Messages say what, where and what was expected::

    train.lr: -1 is not > 0
    column 'age': 3 values are not numbers (rows 5, 17, 40: 'abc', '?', 'x')
"""

from __future__ import annotations

__all__ = [
    "ConflictError",
    "DataError",
    "IntegrityError",
    "InvalidNameError",
    "MlcycleError",
    "NotFoundError",
    "ParityError",
    "SpecError",
    "StoreError",
]


class MlcycleError(Exception):
    """Root of every error mlcycle raises on purpose."""


class SpecError(MlcycleError, ValueError):
    """The project spec (``mlcycle.yaml``) or an override of it is invalid."""


class DataError(MlcycleError, ValueError):
    """A data source cannot be read, or its content is unusable."""


class InvalidNameError(MlcycleError, ValueError):
    """A model, dataset or alias name breaks the one naming rule (see ``mlcycle.store``)."""


class StoreError(MlcycleError):
    """The metadata store or the artifact store failed."""


class IntegrityError(StoreError):
    """An artifact's content does not match the sha256 recorded for it."""

    def __init__(self, artifact: str, expected: str, actual: str) -> None:
        self.artifact = artifact
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"artifact {artifact!r} is corrupt: expected sha256 {expected}, got {actual}"
        )

    def __reduce__(self) -> tuple[type[IntegrityError], tuple[str, str, str]]:
        return (type(self), (self.artifact, self.expected, self.actual))


class NotFoundError(MlcycleError, LookupError):
    """A project, dataset, version, run or artifact does not exist."""


class ConflictError(MlcycleError):
    """The request clashes with what is already recorded."""


class ParityError(MlcycleError):
    """ONNX Runtime and PyTorch disagree on the same rows: the export is not trusted."""
