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
    ├── ParityError                     an exported graph disagrees with the model it came from
    ├── InferenceError                  ONNX Runtime could not load or run a model
    └── Overloaded                      a server's queue is full: retry after ``retry_after`` s

ONNX Runtime's own exceptions are translated once, where a session is made or
run (:mod:`mlcycle.registry._ort`): inputs it refuses are a ``DataError``,
anything else it raises an ``InferenceError``.

Messages say what, where and what was expected::

    train.lr: -1 is not > 0
    column 'age': 3 values are not numbers (rows 5, 17, 40: 'abc', '?', 'x')
"""

from __future__ import annotations

__all__ = [
    "ConflictError",
    "DataError",
    "InferenceError",
    "IntegrityError",
    "InvalidNameError",
    "MlcycleError",
    "NotFoundError",
    "Overloaded",
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


class InferenceError(MlcycleError):
    """ONNX Runtime could not load a model or failed while running it (not the inputs' fault)."""


class Overloaded(MlcycleError):
    """A server's queue is full: the caller should retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"server overloaded: retry after {retry_after:g} s")
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[type[Overloaded], tuple[float]]:
        return (type(self), (self.retry_after,))
