"""Slow and numerous clients against a real server: deadlines, the connection cap, the body
budget, and admission before a body is read (``mlcycle.serve._limits``, ``_admission``).

Each test starts a server with small limits, holds raw sockets open the way a
slow client would and checks that (1) a normal ``/predict`` is still answered
and (2) the slow connections are closed by the server, waiting on the socket
itself (never a wall-clock figure beyond "within a few times the timeout").
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

RECORD = {"income": 61.5, "city": "paris", "member": True}
BODY = json.dumps({"records": [RECORD]}).encode()
PATIENCE = 10  # a slow connection must be closed within PATIENCE x its timeout


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


@contextmanager
def _sockets(url: str, count: int, first: bytes = b"") -> Iterator[list[socket.socket]]:
    """``count`` connections to the server, each having sent ``first``; closed on exit."""
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection(_address(url), timeout=30)
            if first:
                sock.sendall(first)
            opened.append(sock)
        yield opened
    finally:
        for sock in opened:
            sock.close()


def _read_until_closed(sock: socket.socket, within_s: float) -> bytes:
    """What the server sends until it closes the connection; fails if it is still open."""
    sock.settimeout(within_s)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open {within_s} s (got {received[:80]!r})")
    return received


def _predict_ok(url: str) -> None:
    reply = httpx.post(f"{url}/predict", content=BODY, headers={"content-type": "application/json"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["labels"]


def _header(path: str = "/predict", length: int | None = None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _wait_for(condition: Callable[[], bool], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("the server did not get there in time")
        time.sleep(0.01)


def test_partial_headers_are_closed_and_a_normal_request_still_succeeds(serve: Any) -> None:
    timeout = 0.5
    with (
        serve(header_timeout_s=timeout) as (url, _),
        _sockets(url, 100, b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le") as slow,
        _sockets(url, 20) as silent,  # connected, never a byte
    ):
        _predict_ok(url)
        for sock in slow + silent:
            answer = _read_until_closed(sock, timeout * PATIENCE)
            assert _status(answer) == 408
            assert b"request headers not received within 0.5 s" in answer
        _predict_ok(url)
        metrics = httpx.get(f"{url}/metrics").text
        assert 'mlcycle_connections_closed_total{reason="header_timeout"} 120.0' in metrics


def test_an_endless_request_head_is_refused(serve: Any) -> None:
    with serve() as (url, app), _sockets(url, 1, b"POST /predict HTTP/1.1\r\nX-Long: ") as (sock,):
        limit = app.connections.limits.max_head_bytes
        try:
            for _ in range(limit // 4096 + 64):  # in pieces, as a slow client sends it
                sock.sendall(b"a" * 4096)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed on us: the answer was sent first
        answer = _read_until_closed(sock, 10)
        assert _status(answer) == 431, answer
        _predict_ok(url)


def test_a_trickled_body_is_closed_at_its_deadline(serve: Any) -> None:
    timeout = 0.5
    with (
        serve(body_timeout_s=timeout) as (url, app),
        _sockets(url, 10, _header(length=1000)) as slow,
    ):
        _predict_ok(url)
        deadline = time.monotonic() + timeout * PATIENCE
        open_ = list(slow)
        while open_:  # one byte per connection every 50 ms: each byte would reset an idle timer
            assert time.monotonic() < deadline, f"{len(open_)} trickling connections still open"
            for sock in list(open_):
                try:
                    sock.sendall(b" ")
                except (BrokenPipeError, ConnectionResetError):
                    open_.remove(sock)
            time.sleep(0.05)
        for sock in slow:
            answer = _read_until_closed(sock, timeout * PATIENCE)
            assert answer == b"" or _status(answer) == 408
        _predict_ok(url)
        assert app.server.bodies.held == 0  # what the trickles sent is given back


def test_idle_keep_alive_connections_are_closed(serve: Any) -> None:
    request = b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with serve(keepalive_timeout_s=0.5) as (url, _), _sockets(url, 50, request) as idle:
        _predict_ok(url)
        for sock in idle:
            answer = _read_until_closed(sock, 0.5 * PATIENCE)
            assert _status(answer) == 200 and answer.endswith(b'{"live":true}')


def test_past_the_cap_the_longest_idle_connection_makes_room(serve: Any) -> None:
    with serve(max_connections=8, header_timeout_s=60) as (url, app):
        with _sockets(url, 8, b"GET /v2/health/") as held:
            _predict_ok(url)  # a ninth connection: the oldest slow one is closed for it
            answer = _read_until_closed(held[0], 10)
            assert _status(answer) == 503 and b"to make room" in answer
            for sock in held[1:]:  # the others are still open
                sock.setblocking(False)
                with pytest.raises(BlockingIOError):
                    sock.recv(1)
        assert app.connections.evicted >= 1


def test_connections_past_the_cap_are_refused_until_others_close(serve: Any) -> None:
    """When every connection has a request in progress, a new one is refused at once."""
    with serve(max_connections=8, body_timeout_s=60) as (url, app):
        with _sockets(url, 8, _header(length=1000) + b" " * 10):
            _wait_for(lambda: app.server.bodies.held == 80)
            with _sockets(url, 3) as extra:
                for sock in extra:  # answered and closed before anything is read
                    answer = _read_until_closed(sock, 10)
                    assert _status(answer) == 503
                    assert b"retry-after: 1" in answer.lower()
                    assert b"maximum of 8 connections" in answer
            assert not _answers(url)
        # the held connections are closed now: their slots come back
        _wait_for(lambda: _answers(url))
        _predict_ok(url)
        assert app.connections.refused >= 4


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v2/health/live").status_code == 200
    except httpx.TransportError:  # refused before it could send its request
        return False


def test_unfinished_bodies_share_a_byte_budget(serve: Any) -> None:
    budget = 100_000
    with serve(max_pending_body_bytes=budget, body_timeout_s=60) as (url, app):
        bodies = app.server.bodies
        with _sockets(url, 1, _header(length=90_000) + b" " * 80_000) as _holder:
            _wait_for(lambda: bodies.held == 80_000)
            # declared past what is left: refused before a byte of its body is read
            with _sockets(url, 1, _header(length=50_000)) as (declared,):
                answer = _read_until_closed(declared, 10)
            assert _status(answer) == 503 and b"retry-after: 1" in answer.lower()
            assert b"limit of 100,000" in answer
            # no length given: refused as soon as its bytes would pass the budget
            chunked = _header().replace(b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"%x\r\n%s\r\n" % (40_000, b" " * 40_000)
            with _sockets(url, 1, chunked + chunk) as (streamed,):
                answer = _read_until_closed(streamed, 10)
            assert _status(answer) == 503
            assert bodies.held == 80_000  # the refused bodies hold nothing
        _wait_for(lambda: bodies.held == 0)  # the holder is gone: its bytes are given back
        _predict_ok(url)


def test_a_request_over_the_queue_is_refused_before_its_body_is_read(serve: Any) -> None:
    """With the queue's rows taken, a request is answered 503, whatever its body: a body that
    is not JSON (else 400) or one over the size limit (else 413) shows it was never read."""
    with serve(max_queue_rows=1, admission_wait_s=0, body_timeout_s=60) as (url, app):
        with _sockets(url, 1, _header(length=len(BODY)) + BODY[:5]) as (first,):
            _wait_for(lambda: app.server.admission.requests == 1)
            for body, length in ((b"{not json", 9), (b"", 10**12)):
                with _sockets(url, 1, _header(length=length) + body) as (second,):
                    answer = _read_until_closed_or_answered(second)
                assert _status(answer) == 503, answer
                assert b"retry-after: 1" in answer.lower()
                assert b"server overloaded" in answer
            first.sendall(BODY[5:])  # the admitted request goes on
            assert _status(_read_until_closed_or_answered(first)) == 200
        reply = httpx.post(f"{url}/predict", content=b"{not json")
        assert reply.status_code == 400  # with room in the queue it is read, and refused for it
        assert app.server.admission.requests == 0
        assert app.server.admission.refused == 2
        assert "mlcycle_admission_refused_total 2.0" in httpx.get(f"{url}/metrics").text


def _read_until_closed_or_answered(sock: socket.socket) -> bytes:
    """One whole answer (headers and a Content-Length body) from a kept-alive connection."""
    sock.settimeout(10)
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            return received
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_request_waits_unread_for_room_then_is_refused_or_taken(serve: Any) -> None:
    """Past the queue a request waits for room, unread: taken if room comes within
    ``admission_wait_s`` (then read, and a bad body is a 400), else 503."""
    with serve(max_queue_rows=1, admission_wait_s=0.5, body_timeout_s=60) as (url, app):
        admission = app.server.admission
        with _sockets(url, 1, _header(length=len(BODY)) + BODY[:5]) as (first,):
            _wait_for(lambda: admission.requests == 1)
            with _sockets(url, 1, _header(length=9) + b"{not json") as (late,):
                assert _status(_read_until_closed_or_answered(late)) == 503  # no room came
            with _sockets(url, 1, _header(length=9) + b"{not json") as (waiting,):
                _wait_for(lambda: admission.waiting == 1)
                first.sendall(BODY[5:])  # the first is answered: its room goes to the waiting one
                assert _status(_read_until_closed_or_answered(first)) == 200
                assert _status(_read_until_closed_or_answered(waiting)) == 400
        assert (admission.requests, admission.waiting, admission.refused) == (0, 0, 1)


@pytest.mark.slow  # a real `mlcycle serve` process: 5-20 s to start on a busy machine
def test_mlcycle_serve_takes_the_limits_from_its_options(served_project: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["-p", str(served_project), "serve", "loyalty@champion", "--port", str(port)]
    args += ["--max-connections", "4", "--header-timeout", "0.5", "--body-timeout", "60"]
    args += ["--max-pending-body-mb", "0.05", "--admission-wait", "0", "--keepalive-timeout", "1"]
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlcycle")), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert server.poll() is None, server.communicate()
            return _answers(url)

        _wait_for(ready, within_s=60)
        with _sockets(url, 1, b"POST /predict HTTP/1.1\r\n") as (slow,):
            assert b"within 0.5 s" in _read_until_closed(slow, 0.5 * PATIENCE)
        with _sockets(url, 1, _header(length=100_000)) as (big,):
            answer = _read_until_closed(big, 10)
            assert _status(answer) == 503 and b"limit of 52,428" in answer
        expecting = _header(length=1000).replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n")
        with _sockets(url, 4, expecting) as held:
            for sock in held:  # the server reads its body: a request in progress
                assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
            with _sockets(url, 1) as (fifth,):
                answer = _read_until_closed(fifth, 10)
            assert _status(answer) == 503 and b"maximum of 4 connections" in answer
        _wait_for(lambda: _answers(url))
        _predict_ok(url)
    finally:
        server.terminate()
        server.communicate(timeout=60)


def test_the_cli_shows_the_settings_defaults() -> None:
    """``mlcycle serve --help`` shows each limit's default: the one ServeSettings has."""
    import dataclasses
    import typing

    from mlcycle.cli._serve import serve as command
    from mlcycle.serve import ServeSettings

    defaults = {f.name: f.default for f in dataclasses.fields(ServeSettings)}
    shown = {
        name: typing.get_args(hint)[1].show_default
        for name, hint in typing.get_type_hints(command, include_extras=True).items()
        if typing.get_origin(hint) is typing.Annotated
    }
    for option, field, scale in (
        ("admission_wait", "admission_wait_s", 1),
        ("max_connections", "max_connections", 1),
        ("header_timeout", "header_timeout_s", 1),
        ("body_timeout", "body_timeout_s", 1),
        ("keepalive_timeout", "keepalive_timeout_s", 1),
        ("max_pending_body_mb", "max_pending_body_bytes", 2**20),
    ):
        assert float(shown[option]) * scale == defaults[field], option
