"""One project, trained once for the module: a run per kind of input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcycle import Project
from mlcycle.train import train
from tests.registry.conftest import mixed_table


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, dict[str, str]]]:
    root = Path(tmp_path_factory.mktemp("workflow")) / "proj"
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
