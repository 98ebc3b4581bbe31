"""A project with two registered versions, and real servers on loopback ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from mlcycle import Project
from mlcycle.registry import register
from mlcycle.serve import ServeSettings, ServingApp, create_app, serve_in_thread
from mlcycle.train import train
from tests.registry.conftest import mixed_table


@pytest.fixture(scope="session")
def served_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = Path(tmp_path_factory.mktemp("serve")) / "proj"
    with Project.init(root, name="proj") as project:
        project.datasets.add(mixed_table(), name="mixed", target="y")
        first = train(project, data="mixed", overrides={"max_epochs": 15, "seed": 1}).run_id
        second = train(project, data="mixed", overrides={"max_epochs": 3, "seed": 2}).run_id
        register(project, first, "loyalty", alias="champion")
        register(project, second, "loyalty", alias="challenger")
    return root


@pytest.fixture
def serve(served_project: Path) -> Callable[..., object]:
    """``with serve(**settings) as (url, app):`` starts a real server on a free port."""

    @contextmanager
    def start(**changes: object) -> Iterator[tuple[str, ServingApp]]:
        settings = replace(
            ServeSettings(project=served_project, ref="loyalty@champion", poll_s=0), **changes
        )
        app = create_app(settings)
        with serve_in_thread(app) as url:
            yield url, app

    return start
