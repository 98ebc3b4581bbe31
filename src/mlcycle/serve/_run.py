"""Run the server with uvicorn (uvloop + httptools), one or several worker processes."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

from mlcycle.serve._app import ServingApp, create_app
from mlcycle.serve._deployment import ServeSettings
from mlcycle.serve._limits import raise_fd_limit, uvicorn_options

__all__ = ["app_from_env", "run", "serve_in_thread"]

_ENV = "MLCYCLE_SERVE_SETTINGS"


def app_from_env() -> ServingApp:
    """The app factory uvicorn's worker processes call (settings come through the env)."""
    raw = json.loads(os.environ[_ENV])
    raw["project"] = Path(raw["project"])
    return create_app(ServeSettings(**raw), own_process=True)


def run(
    settings: ServeSettings, *, host: str = "127.0.0.1", port: int = 8080, workers: int = 1
) -> None:
    """Serve until interrupted; SIGTERM drains in-flight requests first."""
    import uvicorn

    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "log_level": "warning",
        "timeout_graceful_shutdown": 30,
        "server_header": False,  # do not advertise the server software
        **uvicorn_options(settings),  # timeouts and the connection cap (mlcycle.serve._limits)
    }
    raise_fd_limit(settings.max_connections)
    if workers > 1:
        os.environ[_ENV] = json.dumps(
            {**dataclasses.asdict(settings), "project": str(settings.project)}
        )
        uvicorn.run("mlcycle.serve._run:app_from_env", factory=True, workers=workers, **common)
    else:
        uvicorn.run(create_app(settings, own_process=True), **common)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_thread(
    app: ASGIApp, *, host: str = "127.0.0.1", port: int | None = None
) -> Iterator[str]:
    """Serve ``app`` on loopback from a background thread; yields its base URL.

    For the demo, notebooks and tests: the same app and uvicorn as ``mlcycle serve``.
    """
    import uvicorn

    limits = uvicorn_options(app.server.settings) if isinstance(app, ServingApp) else {}
    config = uvicorn.Config(
        app, host=host, port=port or _free_port(), log_level="warning", access_log=False, **limits
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="mlcycle-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the server did not start on {host}:{config.port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{config.port}"
    finally:
        server.should_exit = True
        thread.join(60)
