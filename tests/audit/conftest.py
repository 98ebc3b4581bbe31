"""Small real models, trained once per test session, for the explainability tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcycle import Project
from mlcycle.train import train
from mlcycle.workflow import register


def planted(rows: int = 600) -> pd.DataFrame:
    """Only ``signal`` decides ``y`` (5 % of labels flipped); the other columns are noise."""
    rng = np.random.default_rng(11)
    signal = rng.normal(size=rows)
    flip = rng.random(rows) < 0.05
    y = np.where((signal > 0) ^ flip, "yes", "no")
    return pd.DataFrame(
        {
            "noise_a": rng.normal(size=rows),
            "signal": signal,
            "noise_b": rng.normal(size=rows),
            "colour": rng.choice(["red", "green", "blue"], size=rows),
            "y": y,
        }
    )


def mixed(rows: int = 800) -> pd.DataFrame:
    """A string column that decides half the answer: ``nice`` flips it. ``lyon`` is the mode."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=rows)
    z = rng.normal(size=rows)
    city = rng.choice(["lyon", "nice", "paris"], size=rows, p=[0.5, 0.25, 0.25])
    member = rng.choice([True, False], size=rows)
    y = np.where((x + 0.5 * z > 0) ^ (city == "nice"), "yes", "no")
    return pd.DataFrame({"x": x, "z": z, "member": member, "city": city, "y": y})


@pytest.fixture(scope="session")
def explained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """A project with ``cancer``, ``digits`` (MLP), ``mixed``, ``mixed-embedded`` and ``planted``."""
    root: Path = tmp_path_factory.mktemp("explain")
    mixed().to_csv(root / "mixed.csv", index=False)
    planted().to_csv(root / "planted.csv", index=False)
    with Project.init(root, name="explain") as project:
        for name, data, epochs in (
            ("cancer", "sklearn:breast_cancer", 6),
            ("digits", "sklearn:digits", 6),
        ):
            run = train(project, data=data, overrides={"max_epochs": epochs}, quiet=True)
            register(project, run.run_id, name)
        for name in ("mixed", "planted"):
            project.datasets.add(str(root / f"{name}.csv"), target="y")
            run = train(
                project,
                data=name,
                overrides={"max_epochs": 30, "model.hidden": [32, 32]},
                quiet=True,
            )
            register(project, run.run_id, name)
        run = train(  # the same data, each category an embedding instead of a one-hot row
            project,
            data="mixed",
            overrides={
                "max_epochs": 30,
                "model.hidden": [32, 32],
                "model.categorical": "embedding",
            },
            quiet=True,
        )
        register(project, run.run_id, "mixed-embedded")
        yield project
