"""The ASGI app: every protocol's routes from one table, answered the fast way.

The protocols are modules of their own, each a route table against the
protocol-agnostic core (:mod:`~mlcycle.serve._core`): the Open Inference
Protocol (V2) over REST (:mod:`~mlcycle.serve._v2_rest`), the records protocol
``/predict`` and ``/feedback`` (:mod:`~mlcycle.serve._records`), and here the
server's own ``/metrics`` and ``/admin/reload``. With ``grpc_port`` set, the
V2 gRPC service (:mod:`~mlcycle.serve._v2_grpc`) runs on the same event loop
over the same core.

Every request is validated against the model's signature before it reaches
ONNX Runtime; bad input is a 400/413/422 naming the input, never a crash. A
full queue answers 503 with ``Retry-After``, decided before the body is read
(:mod:`~mlcycle.serve._admission`, for the routes marked ``admit``); what
slow clients may hold is bounded in :mod:`~mlcycle.serve._limits`. Each answer names the model
version that produced it and is appended to the prediction log off the hot
path. Admin routes need the bearer token the server was started with.
Before any route, :mod:`~mlcycle.serve._guard` checks the ``Host``, a
browser's ``Origin`` and the body's type (421/403/415).
When the version has an out-of-distribution detector (``ood.json``), each
row's flag and score ride along: per row in ``/predict``, as response
``parameters`` in V2, as ``ood``/``ood_score`` columns in the log, and
counted in ``mlcycle_ood_rows_total``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from mlcycle.serve._core import Core
from mlcycle.serve._deployment import ServeSettings
from mlcycle.serve._errors import ClientGone, Refusal
from mlcycle.serve._explain import Explanations
from mlcycle.serve._http import (
    Call,
    Reply,
    Route,
    Router,
    json_reply,
    send_reply,
    starlette_routes,
)
from mlcycle.serve._process import pyarrow_without_pandas
from mlcycle.serve._records import Records
from mlcycle.serve._v2_rest import V2Rest

__all__ = ["Operations", "ServingApp", "create_app"]

_logger = logging.getLogger("mlcycle.serve")

_BUSY = {"Retry-After": "1"}


class Operations:
    """The server's own routes: its metrics and, under the admin token, a reload."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/metrics", "metrics", self.prometheus),
            Route("POST", "/admin/reload", "admin", self.admin_reload),
        ]

    async def prometheus(self, call: Call) -> Reply:
        return Reply(self.core.prometheus(), media_type="text/plain; version=0.0.4")

    async def admin_reload(self, call: Call) -> Reply:
        token = self.core.settings.admin_token
        if not token:
            raise Refusal(403, "admin routes are off: start the server with an admin token")
        self.core.authorize(
            call.headers.get("authorization"),
            token,
            "admin routes need 'Authorization: Bearer <token>'",
        )
        return json_reply(await self.core.reload())


# Garbage-collector thresholds for a server that owns its process. With
# CPython's default (700, 10, 10) a busy server ran a young collection about
# 400 times a second, each scanning the objects of the requests in flight:
# 7% of the CPU and the slowest answers (30-input MLP at 32 connections on one
# core: 2,650 -> 3,150 req/s, p99 22 -> 17 ms with these). Cyclic garbage is
# rare on the request path (answers are freed by reference counting), so
# collecting 30 times less often costs little memory.
GC_THRESHOLDS = (20_000, 20, 50)


class ServingApp:
    """The server's ASGI app: routes answered from the ASGI scope, the rest by Starlette.

    A request whose method and path are in the route table is matched by
    :class:`~mlcycle.serve._http.Router` and answered straight from the
    scope: on a busy server Starlette's request objects, middleware and route
    table cost about as much as our validation. 404, 405, ``HEAD``, redirects
    and the lifespan go through the Starlette app (``fallback``), built from
    the same table. Both paths share :meth:`answer`: the same error form,
    metrics and logging.
    """

    def __init__(self, core: Core, routes: list[Route], fallback: Starlette) -> None:
        self.server = core
        self.routes = routes
        self.router = Router(routes)
        self.fallback = fallback
        self.state = fallback.state
        # read by the uvicorn protocol (mlcycle.serve._limits) for each connection
        self.connections = core.connections

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        method = scope["method"]
        hit = self.router.match(method, path)
        call = Call(scope, receive, hit[1] if hit is not None else {})
        try:
            self.server.guard.check(call.headers, method == "POST")
        except Refusal as refusal:
            self.server.count(hit[0].name if hit is not None else "refused", refusal.status, 0.0)
            await send_reply(send, json_reply({"error": refusal.message}, status=refusal.status))
            return
        if hit is None:
            await self.fallback(scope, receive, send)
            return
        route = hit[0]
        if not route.admit:
            reply = await self.answer(route, call)
        else:
            # before the body is read (mlcycle.serve._admission)
            reserved = await self.server.admit()
            if reserved is None:
                self.server.count(route.name, 503, 0.0)
                message = self.server.admission.message
                await send_reply(send, json_reply({"error": message}, status=503, headers=_BUSY))
                return
            try:
                reply = await self.answer(route, call)
            finally:
                self.server.admission.leave(reserved)
        if reply is not None:  # else the client is gone: nobody to answer
            await send_reply(send, reply)

    async def answer(self, route: Route, call: Call) -> Reply | None:
        """Run a route: refusals become the protocol's error form; counted in the metrics
        (after the answer is sent: see :mod:`~mlcycle.serve._core`)."""
        started = time.perf_counter()
        try:
            reply = await route.handler(call)
        except Refusal as exc:
            reply = json_reply({"error": exc.message}, status=exc.status, headers=exc.headers)
        except ClientGone:
            self.server.count(route.name, 499, time.perf_counter() - started)
            return None
        except Exception:  # a bug: answer 500, keep serving, leave the traceback in the log
            _logger.exception("%s failed", route.name)
            reply = json_reply({"error": "internal server error"}, status=500)
        asyncio.get_running_loop().call_soon(
            self.server.count, route.name, reply.status, time.perf_counter() - started
        )
        return reply


def create_app(settings: ServeSettings, *, own_process: bool = False) -> ServingApp:
    """The ASGI app serving ``settings.ref`` from the project at ``settings.project``.

    ``own_process``: the server is the only thing in this process (``mlcycle
    serve``), so it may tune the process-wide garbage collector: startup's
    objects are frozen out of later collections and young collections run
    less often (:data:`GC_THRESHOLDS`). Left off when the app is embedded
    (notebooks, tests, the demo), so the host keeps its own settings; so is
    :func:`~mlcycle.serve._process.pyarrow_without_pandas`.

    With ``settings.grpc_port``, the Open Inference Protocol's gRPC service
    starts with the app, on the same event loop and core.
    """
    if own_process:
        pyarrow_without_pandas()
    core = Core(settings)
    explanations = core.explainer = Explanations(core)
    routes = [
        *V2Rest(core).routes(),
        *Records(core).routes(),
        *Operations(core).routes(),
        *explanations.routes(),
    ]
    app: ServingApp

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await core.start()
        grpc_server: Any = None
        if settings.grpc_port is not None:
            from mlcycle.serve._v2_grpc import start_grpc  # grpcio only when asked for

            try:
                grpc_server = await start_grpc(core, settings.grpc_host, settings.grpc_port)
            except BaseException:
                await core.stop()
                raise
        if own_process:
            gc.collect()
            gc.freeze()  # startup's objects live as long as the server: stop scanning them
            gc.set_threshold(*GC_THRESHOLDS)
        try:
            yield
        finally:
            if grpc_server is not None:
                await grpc_server.stop(grace=5)
            explanations.close()
            await core.stop()

    async def http_error(request: Request, exc: Exception) -> Response:
        # Starlette's own 404/405, in the protocol's error form
        assert isinstance(exc, HTTPException)
        body = orjson.dumps({"error": exc.detail})
        return Response(body, exc.status_code, exc.headers, "application/json")

    fallback = Starlette(
        routes=starlette_routes(routes, lambda route, call: app.answer(route, call)),
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
    )
    fallback.state.server = core
    app = ServingApp(core, routes, fallback)
    return app
