"""A project with two registered versions, and real servers on loopback ports."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette

from mlcycle import Project
from mlcycle.registry import register
from mlcycle.serve import ServeSettings, create_app
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(app: Starlette) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, loop="asyncio", http="h11", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture
def serve(served_project: Path) -> Callable[..., object]:
    """``with serve(**settings) as (url, app):`` starts a real server on a free port."""

    @contextmanager
    def start(**changes: object) -> Iterator[tuple[str, Starlette]]:
        settings = replace(
            ServeSettings(project=served_project, ref="loyalty@champion", poll_s=0), **changes
        )
        app = create_app(settings)
        with running(app) as url:
            yield url, app

    return start
