"""The demo's loan stream (a change at a known point) and a project for the loop tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mlcycle import Project
from mlcycle.demo._stream import FEATURES, TARGET, loan_rows
from mlcycle.demo._stream import chunks as loan_chunks
from mlcycle.predictions import PredictionLog

__all__ = ["FEATURES", "chunks", "make_project", "rows", "wait_logged"]


# One canary step at half the traffic, judged as soon as 20 requests reached the
# challenger; latency is not what the loop tests judge, so a loaded machine must
# not roll a challenger back (max_latency_ratio 10).
CANARY: dict[str, Any] = {
    "mode": "canary",
    "steps": [0.5],
    "bake_s": 0,
    "min_requests": 20,
    "max_latency_ratio": 10,
}


def rows(n: int, *, changed: bool, seed: int) -> pd.DataFrame:
    """The demo's loan stream with the target named ``y``."""
    return loan_rows(n, changed=changed, seed=seed).rename(columns={TARGET: "y"})


def make_project(
    root: Path,
    loop: dict[str, Any],
    store_url: str | None = None,
    sections: dict[str, dict[str, Any]] | None = None,
) -> Project:
    """A project whose spec has ``loop``; the champion is trained on rows from before the change.

    ``sections`` adds to (or replaces fields of) the spec's other sections: ``{"tune": {...}}``.
    """
    spec: dict[str, Any] = {
        "project": {"name": "stream"},
        "train": {"max_epochs": 40, "model": {"hidden": [32]}, "lr": 0.01, "batch_size": 64},
        "evaluate": {"bootstrap": 200},
        "loop": loop,
    }
    for section, fields in (sections or {}).items():
        spec[section] = {**spec.get(section, {}), **fields}
    if store_url is not None:
        spec["store"] = {"url": store_url}
    Project.init(root, name="stream").close()
    (root / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    return Project.open(root)


def chunks(total: int, size: int, *, changed: bool, seed: int) -> Iterator[pd.DataFrame]:
    for frame in loan_chunks(total, size, changed=changed, seed=seed):
        yield frame.rename(columns={TARGET: "y"})


def wait_logged(project: Project, model: str, rows: int) -> None:
    """Wait until a server's log holds ``rows`` served rows of ``model`` (progress, not a clock)."""
    log = PredictionLog(project.root / ".mlcycle" / "log")
    try:
        for _ in range(6000):
            if log.read(model, source="serve").num_rows >= rows:
                return
            time.sleep(0.05)
    finally:
        log.close()
    raise AssertionError(f"the server never logged {rows} rows of {model!r}")
