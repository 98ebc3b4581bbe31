"""What one client may hold of the server: connections, time to send a request, body bytes.

uvicorn bounds none of these by itself. Its keep-alive timeout only runs
between requests and is reset by every byte received, so a client that
opens a connection and sends half a request line, or trickles a body one
byte a second, holds its connection (and the body it sent so far) forever;
3,000 such connections were all still open after a minute. Hence, for each
connection, :class:`LimitedHttpToolsProtocol` (uvicorn's httptools protocol
with three additions):

* **header timeout**: a request's headers must be complete within
  ``header_timeout_s`` of the connection opening, or of the first byte of a
  later request on it: else ``408`` and the connection is closed.
* **header size**: a request head (request line and headers) past
  ``max_head_bytes`` is answered ``431`` and the connection closed; httptools
  itself would keep appending to a header value that never ends.
* **body timeout**: its body must be complete within ``body_timeout_s`` of
  the headers: else the connection is closed (``408`` if nothing was
  answered yet). It is a deadline, not an idle timeout, so a trickle does
  not extend it.
* **connection cap**: past ``max_connections`` open connections, the one
  that has waited longest without a request in progress (idle after a
  response, or still sending its headers) is closed to make room, as nginx
  does with idle keep-alive connections: so slow or idle clients cannot
  keep a new one out. When every connection has a request in progress, the
  new one is answered ``503`` with ``Retry-After`` and closed at once,
  before it is read, so its file descriptor and buffers are freed.

Idle keep-alive connections are closed after uvicorn's ``timeout_keep_alive``
(``keepalive_timeout_s``). Across connections, :class:`BodyBudget` bounds
the bytes of request bodies received but not yet complete: a body that
would pass it is answered ``503`` at once (by declared ``Content-Length``,
before reading) or as soon as its bytes would (then the connection is
closed, so the rest is not read either).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prometheus_client import Metric

    from mlcycle.serve._admission import Admission
    from mlcycle.serve._deployment import ServeSettings

__all__ = [
    "BodyBudget",
    "ConnectionLimits",
    "Connections",
    "LimitedHttpToolsProtocol",
    "LimitsCollector",
    "raise_fd_limit",
    "uvicorn_options",
]

_logger = logging.getLogger("mlcycle.serve")

FD_RESERVE = 256  # descriptors a server needs besides its connections: log, store, libraries


@dataclass(frozen=True)
class ConnectionLimits:
    """Per-connection limits of one server (see the module's docstring)."""

    max_connections: int = 2048
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_head_bytes: int = 64 * 1024

    @classmethod
    def of(cls, settings: ServeSettings) -> ConnectionLimits:
        return cls(settings.max_connections, settings.header_timeout_s, settings.body_timeout_s)


class BodyBudget:
    """Bytes of unfinished request bodies held by the whole server, bounded.

    >>> budget = BodyBudget(100)
    >>> budget.take(60), budget.take(60), budget.free
    (True, False, 40)
    >>> budget.give(60); budget.free
    100
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    @property
    def free(self) -> int:
        return self.limit - self.held

    def take(self, size: int) -> bool:
        """Count ``size`` more bytes held, unless that would pass the limit (then False)."""
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        """Bytes taken earlier are no longer held (the body is complete, or dropped)."""
        self.held -= size

    def message(self, size: int | None = None) -> str:
        wanted = f"a body of {size:,} bytes" if size is not None else "this body"
        return (
            f"the server holds {self.held:,} bytes of unfinished request bodies, {wanted} "
            f"would pass its limit of {self.limit:,}: retry later"
        )


def _raw_response(status: int, reason: bytes, message: str, retry_after: bool = False) -> bytes:
    """A complete HTTP/1.1 answer with a JSON error, written straight to a transport."""
    body = orjson.dumps({"error": message})
    head = [
        b"HTTP/1.1 %d %s\r\n" % (status, reason),
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n",
    ]
    if retry_after:
        head.append(b"retry-after: 1\r\n")
    return b"".join([*head, b"\r\n", body])


class Connections:
    """One server's limits, and its connections without a request in progress, oldest first."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.idle: dict[LimitedHttpToolsProtocol, None] = {}  # insertion-ordered
        self.open = 0
        # connections the server closed, by why: evicted, refused, header_timeout,
        # body_timeout, head_too_large
        self.closed: dict[str, int] = dict.fromkeys(CLOSE_REASONS, 0)

    @property
    def evicted(self) -> int:
        return self.closed["evicted"]

    @property
    def refused(self) -> int:
        return self.closed["refused"]


CLOSE_REASONS = ("evicted", "refused", "header_timeout", "body_timeout", "head_too_large")


def _connections_of(app: Any) -> Connections:
    """The app's :class:`Connections`, through the middleware uvicorn wraps it in."""
    for _ in range(8):
        found = getattr(app, "connections", None)
        if isinstance(found, Connections):
            return found
        app = getattr(app, "app", None)
        if app is None:
            break
    raise TypeError("LimitedHttpToolsProtocol serves an app with a 'connections' attribute")


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header and a body deadline and a connection cap.

    Passed to uvicorn as ``http=``; it finds its :class:`Connections` on the
    app (``app.connections``), so one class serves every server of a
    process, and worker processes import it by name.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool = _connections_of(self.app)
        self.limits = self.pool.limits
        self._deadline: asyncio.TimerHandle | None = None
        self._head: int | None = None  # bytes of the request head received, while it is read

    # -- connection ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.pool.open += 1
        if len(self.connections) > self.limits.max_connections and not self._make_room():
            self.pool.closed["refused"] += 1
            message = (
                f"the server has its maximum of {self.limits.max_connections:,} connections "
                "open, each with a request in progress: retry later"
            )
            transport.write(_raw_response(503, b"Service Unavailable", message, retry_after=True))
            transport.close()
            return
        self.pool.idle[self] = None
        self._head = 0
        self._arm(self.limits.header_timeout_s, self._headers_late)

    def data_received(self, data: bytes) -> None:
        reading_head = self._head is not None
        super().data_received(data)
        # a chunk read while a head was being read, and the head still not complete: it was all
        # head (a head that began inside a chunk is counted from the next one)
        if reading_head and self._head is not None and not self.transport.is_closing():
            self._head += len(data)
            if self._head > self.limits.max_head_bytes:
                message = f"request head over {self.limits.max_head_bytes:,} bytes"
                self.transport.write(
                    _raw_response(431, b"Request Header Fields Too Large", message)
                )
                self.transport.close()
                self.pool.closed["head_too_large"] += 1

    def _make_room(self) -> bool:
        """Close the connection that waited longest without a request in progress, if any."""
        idle = self.pool.idle
        while idle:
            oldest = next(iter(idle))
            del idle[oldest]
            if oldest.transport.is_closing():
                continue
            if oldest.cycle is None or oldest.cycle.response_complete:
                message = "connection closed to make room for another: the server is at its cap"
                oldest.transport.write(
                    _raw_response(503, b"Service Unavailable", message, retry_after=True)
                )
            oldest.transport.close()
            self.pool.closed["evicted"] += 1
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.pool.idle.pop(self, None)
        self.pool.open -= 1
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.cycle.response_complete:
            self.pool.idle[self] = None  # kept alive, waiting for its next request

    # -- deadlines ----------------------------------------------------------------

    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head is None:
            self._head = 0
        if self._deadline is None:  # a later request on a kept-alive connection
            self._arm(self.limits.header_timeout_s, self._headers_late)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._head = None
        self.pool.idle.pop(self, None)  # a request in progress: not closed to make room
        super().on_headers_complete()
        if not self.transport.is_closing():
            self._arm(self.limits.body_timeout_s, self._body_late)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _headers_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        message = f"request headers not received within {self.limits.header_timeout_s:g} s"
        if self.cycle is None or self.cycle.response_complete:  # nothing else to answer
            self.transport.write(_raw_response(408, b"Request Timeout", message))
        self.transport.close()
        self.pool.closed["header_timeout"] += 1

    def _body_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            answer = not cycle.response_started
            # the app waiting on the body sees the client gone, and writes nothing more
            cycle.disconnected = True
            cycle.message_event.set()
            if answer:
                message = f"request body not received within {self.limits.body_timeout_s:g} s"
                self.transport.write(_raw_response(408, b"Request Timeout", message))
        self.transport.close()
        self.pool.closed["body_timeout"] += 1


class LimitsCollector(Collector):
    """The limits' counters in ``/metrics``, read when scraped (nothing on the request path)."""

    def __init__(self, connections: Connections, admission: Admission, bodies: BodyBudget) -> None:
        self.connections = connections
        self.admission = admission
        self.bodies = bodies

    def collect(self) -> Iterator[Metric]:
        pool = self.connections
        yield GaugeMetricFamily("mlcycle_connections_open", "Open connections", pool.open)
        closed = CounterMetricFamily(
            "mlcycle_connections_closed",
            "Connections the server closed or refused, by why",
            labels=["reason"],
        )
        for reason, count in pool.closed.items():
            closed.add_metric([reason], count)
        yield closed
        admission = self.admission
        yield GaugeMetricFamily(
            "mlcycle_admission_in_flight", "Prediction requests admitted", admission.requests
        )
        yield GaugeMetricFamily(
            "mlcycle_admission_waiting", "Prediction requests waiting for room", admission.waiting
        )
        yield CounterMetricFamily(
            "mlcycle_admission_refused",
            "Prediction requests refused (503) before their body was read",
            admission.refused,
        )
        yield GaugeMetricFamily(
            "mlcycle_pending_body_bytes",
            "Bytes of unfinished request bodies held",
            self.bodies.held,
        )


def uvicorn_options(settings: ServeSettings) -> dict[str, Any]:
    """uvicorn's settings for a server with ``settings``' limits (the app carries the rest)."""
    return {
        "http": LimitedHttpToolsProtocol,
        "timeout_keep_alive": settings.keepalive_timeout_s,
    }


def raise_fd_limit(connections: int) -> None:
    """Let the process open ``connections`` sockets and its own files, as far as the hard limit
    allows; say so when it does not (connections past it would fail at ``accept``)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < wanted:
            _logger.warning(
                "--max-connections %d needs %d file descriptors; the limit is %d (ulimit -Hn)",
                connections,
                wanted,
                new,
            )
