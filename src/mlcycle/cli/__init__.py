"""The ``mlcycle`` command line: a thin layer over :class:`mlcycle.Project`."""

from __future__ import annotations

import sys

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
    """Console-script entry point."""
    sys.exit(_main())
