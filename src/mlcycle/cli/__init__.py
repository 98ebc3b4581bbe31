"""The ``mlcycle`` command line: a thin layer over :class:`mlcycle.Project`."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

from mlcycle.cli import (  # noqa: F401  (each registers its commands)
    _audit,
    _compress,
    _data,
    _demo,
    _doctor,
    _explain,
    _gate,
    _loop,
    _models,
    _monitor,
    _project,
    _runs,
    _score,
    _serve,
    _train,
    _tune,
    _ui,
)
from mlcycle.cli._app import app
from mlcycle.cli._app import main as _main

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point: the command's exit code, whatever native libraries do at exit.

    Once the command is done, Python's exit work runs (its ``atexit`` handlers,
    the streams flushed) and the process leaves with ``os._exit``, skipping
    the C-level teardown: there, the thread pools that torch, ONNX Runtime
    and Arrow leave can abort the process under load ("terminate called
    without an active exception", exit -6) after the command succeeded or
    printed its error. When a thread of the command is still running, the
    ordinary exit waits for it instead.
    """
    code = _main()
    if any(t.is_alive() and not t.daemon for t in threading.enumerate()[1:]):
        sys.exit(code)
    _leave(code)


def _leave(code: int) -> None:
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)
