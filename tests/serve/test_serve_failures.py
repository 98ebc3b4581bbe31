"""A version that cannot be served: said once in one line by a running server, refused by the CLI."""

from __future__ import annotations

import logging
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlcycle import Project
from mlcycle.serve import _deployment

MLCYCLE = str(Path(sys.executable).with_name("mlcycle"))
RECORDS = {"records": [{"income": 61.5, "city": "paris", "member": True}]}


def _wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _follow_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("could not follow")]


def test_a_corrupt_version_is_logged_once_in_one_line_then_once_a_minute(
    serve: Any, corrupt_copy: Path, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    caplog.set_level(logging.INFO, logger="mlcycle.serve")
    with serve(project=corrupt_copy, poll_s=0.01) as (url, app):
        deployment = app.state.server.deployment
        polls: list[None] = []
        check = deployment.check_aliases

        async def counted() -> bool:
            polls.append(None)
            return bool(await check())

        deployment.check_aliases = counted
        with Project.open(corrupt_copy) as project:
            project.store.registry.set_alias("loyalty", 2, "champion", actor="test", reason="bad")
        _wait_for(lambda: len(polls) >= 20)
        errors = _follow_errors(caplog)
        assert len(errors) == 1  # not one per poll
        message = errors[0].getMessage()
        assert errors[0].exc_info is None and "\n" not in message  # no traceback
        assert message.startswith(
            "could not follow loyalty@champion (1 poll in a row), still serving loyalty@1: "
            "artifact "
        )
        assert "is corrupt: expected sha256" in message
        assert httpx.post(f"{url}/predict", json=RECORDS).json()["version"] == 1

        monkeypatch.setattr(_deployment, "REPEAT_FAILURE_S", 0.0)  # "a minute" has passed
        _wait_for(lambda: len(_follow_errors(caplog)) >= 2)
        again = _follow_errors(caplog)[1].getMessage()
        assert re.match(r"could not follow loyalty@champion \((\d+) polls in a row\)", again)

        with Project.open(corrupt_copy) as project:
            project.store.registry.set_alias("loyalty", 1, "champion", actor="test", reason="ok")
        _wait_for(
            lambda: any(
                r.getMessage() == "following loyalty@champion again" for r in caplog.records
            )
        )


def test_serve_refuses_what_it_cannot_serve_in_one_line_before_serving(
    served_project: Path,
    corrupt_copy: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlcycle.cli import app  # noqa: F401  (registers the commands)
    from mlcycle.cli._app import main

    monkeypatch.setenv("COLUMNS", "1000")  # rich wraps at 80 columns without a terminal
    with Project.open(corrupt_copy) as project:
        project.store.registry.set_alias("loyalty", 2, "champion", actor="test", reason="bad")
    good, bad = ["-p", str(served_project)], ["-p", str(corrupt_copy)]
    cases = [
        ([*bad, "serve", "loyalty@champion"], "is corrupt: expected sha256"),
        (
            [*good, "serve", "loyalty@champion", "--canary", "nosuch:10"],
            "model 'loyalty' has no alias @nosuch",
        ),
        (
            [*good, "serve", "loyalty@champion", "--admin-token", "s3cret"],
            "--admin-token would show the token to every user of this machine (ps): "
            "set MLCYCLE_ADMIN_TOKEN or put it in a file given with --admin-token-file",
        ),
        (
            [*good, "serve", "loyalty@champion", "--admin-token-file", "nope"],
            "--admin-token-file nope: no such file",
        ),
    ]
    with socket.socket() as taken:  # were a case to get through, it could not bind: no hang
        taken.bind(("127.0.0.1", 0))
        port = str(taken.getsockname()[1])
        for args, message in cases:
            assert main([*args, "--port", port]) == 1, args
            stderr = capsys.readouterr().err
            lines = stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), stderr
            assert message in lines[0], stderr
            assert "serving" not in stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow  # a real `mlcycle serve` process: 5-20 s to start on a busy machine
def test_serve_takes_the_admin_token_from_a_file_and_extra_host_names(
    served_project: Path, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    port = _free_port()
    args = ["-p", str(served_project), "serve", "loyalty@champion", "--port", str(port)]
    args += ["--admin-token-file", str(token_file), "--allowed-host", "models.example.com"]
    server = subprocess.Popen(
        [MLCYCLE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            assert server.poll() is None, server.communicate()
            try:
                return httpx.get(f"{url}/v2/health/ready").status_code == 200
            except httpx.TransportError:
                return False

        _wait_for(ready, timeout=60)
        reload = f"{url}/admin/reload"
        assert httpx.post(reload, headers={"authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.post(reload, headers={"authorization": "Bearer nope"}).status_code == 401
        named = {"host": "models.example.com"}
        assert httpx.post(f"{url}/predict", json=RECORDS, headers=named).status_code == 200
        other = {"host": "other.example.com"}
        assert httpx.post(f"{url}/predict", json=RECORDS, headers=other).status_code == 421
    finally:
        server.terminate()
        server.communicate(timeout=60)
