"""One project, trained once for the module: a run per kind of input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from mlcycle import Project
from mlcycle.train import train


def mixed_table(n: int = 400, seed: int = 0) -> pa.Table:
    """A known truth over a number, a category and a flag, with gaps in each."""
    rng = np.random.default_rng(seed)
    income = rng.normal(50.0, 10.0, n)
    city = rng.choice(["paris", "lyon", "nice"], n).astype(object)
    member = rng.random(n) > 0.5
    score = (income - 50) / 10 + np.where(city == "paris", 1.0, -0.5) + np.where(member, 0.8, 0)
    y = np.where(score > 0.3, "yes", "no")
    income[::17] = np.nan
    city[::23] = None
    return pa.table(
        {
            "income": income,
            "city": pa.array(city.tolist(), type=pa.string()),
            "member": pa.array(member.tolist(), type=pa.bool_()),
            "y": y,
        }
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, dict[str, str]]]:
    root = Path(tmp_path_factory.mktemp("registry")) / "proj"
    with Project.init(root, name="proj") as project:
        project.datasets.add(mixed_table(), name="mixed", target="y")
        runs = {
            "iris": train(project, data="sklearn:iris", overrides={"max_epochs": 30}).run_id,
            "mixed": train(project, data="mixed", overrides={"max_epochs": 20}).run_id,
            "digits": train(
                project, data="sklearn:digits", model="cnn", overrides={"max_epochs": 3}
            ).run_id,
            "diabetes": train(
                project, data="sklearn:diabetes", overrides={"max_epochs": 10}
            ).run_id,
        }
        yield project, runs
