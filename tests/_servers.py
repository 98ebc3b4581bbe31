"""Waiting for a served process started by a test: ready, or say why not."""

from __future__ import annotations

import subprocess
import time

import httpx


def wait_ready(server: subprocess.Popen[bytes], url: str, *, timeout: float = 60) -> None:
    """Poll ``url``/v2/health/ready until 200; fail with the server's stderr if it exits."""
    deadline = time.monotonic() + timeout
    while True:
        assert server.poll() is None, server.communicate()[1]
        try:
            if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not become ready"
        time.sleep(0.05)
