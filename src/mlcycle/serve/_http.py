"""HTTP plumbing the REST protocols share: one route table, the request view, bodies, replies.

Each route is declared once, as a :class:`Route` in the table a protocol
module returns. :class:`Router` compiles the table for the fast path (a
request matched by method and path segments and answered straight from the
ASGI scope, see :class:`~mlcycle.serve._app.ServingApp`), and
:func:`starlette_routes` builds Starlette's routes from the same table, so
that Starlette answers what the fast path does not match (404, 405, ``HEAD``,
the lifespan) exactly as it would have answered the routes themselves.

:func:`read_body` is the one place a request body is read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute
from starlette.types import Receive, Scope, Send

from mlcycle.errors import DataError
from mlcycle.serve._core import ascii_int
from mlcycle.serve._errors import ClientGone, Refusal
from mlcycle.serve._v2 import attach_binary_data

if TYPE_CHECKING:
    from mlcycle.serve._core import Core

__all__ = [
    "Call",
    "Handler",
    "Reply",
    "Route",
    "Router",
    "json_body",
    "json_reply",
    "read_body",
    "send_reply",
    "starlette_routes",
]

_NO_PARAMS: dict[str, str] = {}
# refused for a lack of room, not for what the request is; the connection is closed so that
# the rest of its body is not read either
_BUSY_CLOSE = {"Retry-After": "1", "Connection": "close"}
_Segments = tuple[tuple[int, str], ...]  # (position, text) of a path's segments


class Reply(NamedTuple):
    """An answer, before it is sent the fast way or as a Starlette ``Response``."""

    body: bytes
    status: int = 200
    headers: dict[str, str] | None = None
    media_type: str = "application/json"


def json_reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), status, headers)


class Call:
    """What a route needs of a request: its headers, path parameters and body.

    Built straight from the ASGI scope, so the routes skip Starlette's request
    objects, middleware and route table.
    """

    __slots__ = ("_headers", "path_params", "receive", "scope")

    def __init__(self, scope: Scope, receive: Receive, path_params: dict[str, str]) -> None:
        self.scope = scope
        self.receive = receive
        self.path_params = path_params
        self._headers: dict[str, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        """Header names in lower case; the first of repeated headers wins."""
        if self._headers is None:
            headers: dict[str, str] = {}
            for key, value in self.scope["headers"]:
                headers.setdefault(key.decode("latin-1").lower(), value.decode("latin-1"))
            self._headers = headers
        return self._headers


Handler = Callable[[Call], Awaitable[Reply]]


@dataclass(frozen=True)
class Route:
    """One route: ``method`` on ``path`` (``{param}`` matches one non-empty segment).

    ``name`` labels its answers in the metrics. ``admit``: a prediction route,
    admitted (or refused 503) before its body is read (:mod:`~mlcycle.serve._admission`).
    """

    method: str
    path: str
    name: str
    handler: Handler
    admit: bool = False


class Router:
    """The route table compiled for the fast path: a path without parameters is one
    dictionary lookup, one with parameters a comparison of its segments."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._static: dict[tuple[str, str], Route] = {}
        # (method, segments) -> [(route, its literal segments, its parameters)], in table order
        self._dynamic: dict[tuple[str, int], list[tuple[Route, _Segments, _Segments]]] = {}
        for route in routes:
            parts = route.path.split("/")
            params = tuple((i, p[1:-1]) for i, p in enumerate(parts) if p.startswith("{"))
            if not params:
                self._static.setdefault((route.method, route.path), route)
                continue
            literals = tuple((i, p) for i, p in enumerate(parts) if not p.startswith("{"))
            self._dynamic.setdefault((route.method, len(parts)), []).append(
                (route, literals, params)
            )

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for ``method`` and ``path``, with its path parameters; ``None`` if none."""
        route = self._static.get((method, path))
        if route is not None:
            return route, _NO_PARAMS
        parts = path.split("/")
        for route, literals, params in self._dynamic.get((method, len(parts)), ()):
            if all(parts[i] == text for i, text in literals) and all(parts[i] for i, _ in params):
                return route, {name: parts[i] for i, name in params}
        return None


def starlette_routes(
    routes: Sequence[Route], answer: Callable[[Route, Call], Awaitable[Reply | None]]
) -> list[StarletteRoute]:
    """The same table as Starlette routes, each answered through ``answer``."""

    def endpoint(route: Route) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            reply = await answer(route, Call(request.scope, request.receive, request.path_params))
            if reply is None:
                return Response(status_code=499)
            return Response(reply.body, reply.status, reply.headers, reply.media_type)

        return run

    return [StarletteRoute(r.path, endpoint(r), methods=[r.method]) for r in routes]


async def read_body(call: Call, core: Core) -> bytes:
    """The request's body, at most ``max_body_bytes``: the one place a body is read.

    Bodies being received hold bytes of the server-wide budget
    (:class:`~mlcycle.serve._limits.BodyBudget`): past it, 503 and the
    connection closed.

    Raises:
        Refusal: 413 when the body (declared or received) is over the limit, 503
            when the server holds too many body bytes already.
        ClientGone: the client disconnected first.
    """
    limit = core.settings.max_body_bytes
    declared = call.headers.get("content-length")
    if declared is not None and (ascii_int(declared) or 0) > limit:
        raise Refusal(413, f"request body of {declared} bytes is over the limit of {limit}")
    bodies = core.bodies  # bytes of unfinished bodies, server-wide: 503 past their budget
    if declared is not None and (ascii_int(declared) or 0) > bodies.free:
        raise Refusal(503, bodies.message(ascii_int(declared)), _BUSY_CLOSE)
    chunks, size, held = [], 0, 0
    try:
        while True:
            message = await call.receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise Refusal(413, f"request body is over the limit of {limit} bytes")
            if not bodies.take(len(chunk)):
                raise Refusal(503, bodies.message(), _BUSY_CLOSE)
            held += len(chunk)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        bodies.give(held)


async def json_body(call: Call, core: Core) -> Any:
    """The request's JSON body; with V2's binary-data extension, its tensors filled in.

    Raises:
        Refusal: 400 for a body that is not JSON or binary data that does not fit its header.
    """
    raw = await read_body(call, core)
    header = call.headers.get("inference-header-content-length")
    blob = b""
    if header is not None:
        size = ascii_int(header)
        if size is None or size > len(raw):
            raise Refusal(
                400,
                f"Inference-Header-Content-Length {header!r}: expected the size in bytes "
                f"of the JSON part, at most the body's {len(raw)}",
            )
        raw, blob = raw[:size], raw[size:]
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Refusal(400, f"request body is not valid JSON: {exc}") from None
    if header is not None:
        try:
            attach_binary_data(parsed, blob)
        except DataError as exc:
            raise Refusal(400, str(exc)) from None
    return parsed


async def send_reply(send: Send, reply: Reply) -> None:
    headers = [
        (b"content-type", reply.media_type.encode()),
        (b"content-length", str(len(reply.body)).encode()),
    ]
    if reply.headers:
        headers += [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
