"""Where a run ran: Python, the platform, package versions, the project's git commit.

Recorded with every run's parameters, so a result can be traced to the code
and the libraries that made it.
"""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

__all__ = ["environment", "git_state"]

PACKAGES = ("mlcycle", "torch", "numpy", "pyarrow", "scikit-learn", "onnxruntime")


def git_state(root: Path) -> dict[str, Any] | None:
    """The commit checked out at ``root`` and whether the tree has changes (None: not git)."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


@functools.cache
def _packages() -> dict[str, str]:
    # Once a process: the code it runs is what it imported, whatever is installed later, and
    # reading the metadata costs milliseconds a run (a study's trials are many short runs).
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            continue
    return packages


def environment(root: Path) -> dict[str, Any]:
    """Python, platform, package versions, torch's threads and the git state of ``root``."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": dict(_packages()),
        "torch_threads": torch.get_num_threads(),
        "git": git_state(root),
    }
