"""A real S3 API on loopback for tests: moto's server mode, in its own process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def s3_server() -> Iterator[str]:
    """Start ``moto_server`` on a free loopback port; yield its endpoint URL; stop it."""
    port = _free_port()
    moto = Path(sys.executable).parent / "moto_server"
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, **CREDENTIALS},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait(server, url, log)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _wait(server: subprocess.Popen[bytes], url: str, log: IO[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        if server.poll() is not None:
            log.seek(0)
            raise AssertionError(log.read().decode(errors="replace")[-2000:])
        try:
            httpx.get(f"{url}/moto-api/")
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.1)
