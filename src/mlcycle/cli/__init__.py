"""The ``mlcycle`` command line: a thin layer over :class:`mlcycle.Project`."""

from __future__ import annotations

import sys

from mlcycle.cli import (  # noqa: F401  (each registers its commands)
    _data,
    _demo,
    _gate,
    _loop,
    _models,
    _monitor,
    _project,
    _runs,
    _score,
    _serve,
    _train,
)
from mlcycle.cli._app import app
from mlcycle.cli._app import main as _main

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    sys.exit(_main())
