"""A project with two registered versions, and real servers on loopback ports."""

from __future__ import annotations

import shutil
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


@pytest.fixture
def corrupt_copy(served_project: Path, tmp_path: Path) -> Path:
    """A copy of the served project (without its log) whose version 2 has a tampered graph."""
    root = tmp_path / "copy"
    shutil.copytree(served_project, root, ignore=shutil.ignore_patterns("log"))
    with Project.open(root) as project:
        version = project.store.registry.get("loyalty@2")
        blob = next(root.rglob(version.files["model.onnx"]))
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    return root
