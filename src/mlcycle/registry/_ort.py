"""ONNX Runtime's exceptions, translated once into mlcycle's (as httpx's ``map_exceptions``).

ONNX Runtime raises classes of its own (``onnxruntime.capi.
onnxruntime_pybind11_state.InvalidArgument``, ``Fail``, ``RuntimeException``
…, none a subclass of anything but :class:`Exception`) and, from its Python
wrapper, plain ``ValueError`` / ``RuntimeError`` / ``TypeError`` for feeds it
cannot take. Every place that makes or runs a session catches exactly
:data:`ORT_ERRORS` and raises what :func:`from_ort` makes of it:

* inputs the graph refuses while running (a type, a rank, a dimension, a
  missing or unknown name): :class:`~mlcycle.errors.DataError`, a caller's mistake;
* anything else (a model it cannot load, a kernel that fails):
  :class:`~mlcycle.errors.InferenceError`.

The message names the model and keeps ONNX Runtime's own words, without its
``[ONNXRuntimeError] : 2 : INVALID_ARGUMENT :`` prefix.

Example:
    >>> import onnxruntime
    >>> with ort_errors("fraud@3", loading=True):
    ...     onnxruntime.InferenceSession(b"not a model", providers=["CPUExecutionProvider"])
    Traceback (most recent call last):
    ...
    mlcycle.errors.InferenceError: fraud@3: ONNX Runtime cannot load the model: Failed to load model because protobuf parsing failed.
"""

from __future__ import annotations

import re
from types import TracebackType

from onnxruntime.capi import onnxruntime_pybind11_state as _state

from mlcycle.errors import DataError, InferenceError, MlcycleError

__all__ = ["ORT_ERRORS", "from_ort", "ort_errors"]

# ONNX Runtime's own classes (every one its binding defines), and the builtins its wrapper raises.
_NATIVE: tuple[type[Exception], ...] = tuple(
    value
    for value in vars(_state).values()
    if isinstance(value, type) and issubclass(value, Exception)
)
ORT_ERRORS: tuple[type[Exception], ...] = (*_NATIVE, ValueError, RuntimeError, TypeError)
_REFUSED: tuple[type[Exception], ...] = (
    _state.InvalidArgument,
    ValueError,
    RuntimeError,
    TypeError,
)
_PREFIX = re.compile(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*")


def _words(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return _PREFIX.sub("", text) or type(exc).__name__


def from_ort(exc: Exception, what: str, *, loading: bool = False) -> Exception:
    """The mlcycle error for ONNX Runtime's ``exc``, raised by ``what`` (a model's name).

    An error that is already mlcycle's, or that ONNX Runtime did not raise,
    comes back unchanged (raise it as it is).
    """
    if isinstance(exc, MlcycleError) or not isinstance(exc, ORT_ERRORS):
        return exc
    if loading:
        return InferenceError(f"{what}: ONNX Runtime cannot load the model: {_words(exc)}")
    if isinstance(exc, _REFUSED):
        return DataError(f"{what}: ONNX Runtime refused the inputs: {_words(exc)}")
    return InferenceError(f"{what}: ONNX Runtime failed while predicting: {_words(exc)}")


class ort_errors:  # a lower-case name, like contextlib's context managers
    """Translate ONNX Runtime's exceptions raised in the block (see :func:`from_ort`).

    A class rather than a generator-based context manager: entering and leaving
    costs a fraction of a microsecond, little enough for a request's path.
    """

    __slots__ = ("loading", "what")

    def __init__(self, what: str, *, loading: bool = False) -> None:
        self.what = what
        self.loading = loading

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or not isinstance(exc, ORT_ERRORS) or isinstance(exc, MlcycleError):
            return
        raise from_ort(exc, self.what, loading=self.loading) from exc
