"""A stream with a known truth: eight features, a linear concept, and a change at a known row.

Before the change, ``y = yes`` when ``x · w_before + noise > 0``; after it, five
features move by 0.8 standard deviations (covariate shift) and the concept
turns (``w_after`` flips the sign of three weights), so the old model is wrong
on a large share of the new rows and only retraining on new labels can fix it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mlcycle import Project

FEATURES = [f"x{i}" for i in range(8)]
W_BEFORE = np.array([1.5, -1.0, 0.8, 0.6, -0.5, 0.4, 0.3, -0.2])
W_AFTER = W_BEFORE * np.array([-1, 1, -1, 1, -1, 1, 1, 1])
SHIFT = np.array([0.8, 0.8, 0.8, 0.8, 0.8, 0.0, 0.0, 0.0])


def rows(n: int, *, changed: bool, seed: int) -> pd.DataFrame:
    """``n`` labelled rows from before (``changed=False``) or after the change."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES))) + (SHIFT if changed else 0.0)
    w = W_AFTER if changed else W_BEFORE
    score = x @ w - (SHIFT @ w if changed else 0.0) + 0.25 * rng.normal(size=n)
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["y"] = np.where(score > 0, "yes", "no")
    return frame


def make_project(root: Path, loop: dict[str, Any], store_url: str | None = None) -> Project:
    """A project whose spec has ``loop``; the champion is trained on rows from before the change."""
    spec: dict[str, Any] = {
        "project": {"name": "stream"},
        "train": {"max_epochs": 40, "model": {"hidden": [32]}, "lr": 0.01, "batch_size": 64},
        "evaluate": {"bootstrap": 200},
        "loop": loop,
    }
    if store_url is not None:
        spec["store"] = {"url": store_url}
    Project.init(root, name="stream").close()
    (root / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    return Project.open(root)


def chunks(total: int, size: int, *, changed: bool, seed: int) -> Iterator[pd.DataFrame]:
    for i in range(0, total, size):
        yield rows(min(size, total - i), changed=changed, seed=seed + i)
