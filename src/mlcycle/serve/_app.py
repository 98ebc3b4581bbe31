"""The ASGI app: Open Inference Protocol (V2) routes, ``/predict``, feedback, metrics.

Every request is validated against the model's signature before it reaches
ONNX Runtime; bad input is a 400/413/422 naming the input, never a crash. A
full queue answers 503 with ``Retry-After``, decided before the body is read
(:mod:`~mlcycle.serve._admission`); what slow clients may hold is bounded
in :mod:`~mlcycle.serve._limits`. Each answer names the model
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
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from mlcycle._system import cores
from mlcycle._version import __version__
from mlcycle.errors import DataError, MlcycleError
from mlcycle.predictions import LoggedBatch, PredictionLog
from mlcycle.registry import Feeds
from mlcycle.serve._admission import Admission
from mlcycle.serve._batcher import Overloaded
from mlcycle.serve._deployment import OOD_FLAG, OOD_SCORE, Deployment, LoadedModel, ServeSettings
from mlcycle.serve._feedback import (
    RETRY_AFTER_S,
    LabelRule,
    RecentIds,
    bearer_matches,
    check_labels,
)
from mlcycle.serve._guard import Guard, Refusal
from mlcycle.serve._ids import RequestIds, client_id
from mlcycle.serve._limits import BodyBudget, ConnectionLimits, Connections, LimitsCollector
from mlcycle.serve._process import pyarrow_without_pandas
from mlcycle.serve._v2 import (
    attach_binary_data,
    decode_inputs,
    encode_outputs,
    model_metadata,
    numeric_feeds,
    requested_outputs,
)

__all__ = ["ServingApp", "create_app"]

_logger = logging.getLogger("mlcycle.serve")


MAX_UNMATCHED_SHOWN = 20


def row_ids(request_id: str, rows: int) -> list[str]:
    """The ids of a multi-row request's rows in the log and for ``/feedback``: ``R:0``, ``R:1``…"""
    return [f"{request_id}:{i}" for i in range(rows)]


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class _Reply(NamedTuple):
    """An answer, before it is sent the fast way or as a Starlette ``Response``."""

    body: bytes
    status: int = 200
    headers: dict[str, str] | None = None
    media_type: str = "application/json"


_BUSY = {"Retry-After": "1"}
# refused for a lack of room, not for what the request is; the connection is closed so that
# the rest of its body is not read either
_BUSY_CLOSE = {"Retry-After": "1", "Connection": "close"}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), status, headers)


class _ClientGone(Exception):
    """The client disconnected before its request body arrived."""


class _Call:
    """What a route needs of a request: its headers, path parameters and body.

    Built straight from the ASGI scope, so the hot routes skip Starlette's
    request objects, middleware and route table (see :class:`ServingApp`).
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


def _ascii_int(text: str) -> int | None:
    """``text`` as a non-negative integer if it is ASCII digits only (``'²'.isdigit()`` is true)."""
    return int(text) if text.isascii() and text.isdigit() else None


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mlcycle_requests", "Requests answered", ["route", "code"], registry=self.registry
        )
        self.latency = Histogram(
            "mlcycle_request_seconds",
            "Time from request to answer",
            ["route"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "mlcycle_batch_rows",
            "Rows per ONNX Runtime call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )
        self.rows = Counter("mlcycle_rows", "Rows predicted", ["version"], registry=self.registry)
        self.version = Gauge(
            "mlcycle_model_version", "Version served", ["role"], registry=self.registry
        )
        self.dropped = Gauge(
            "mlcycle_log_dropped_rows",
            "Rows the prediction log dropped (its buffer was full while writes failed)",
            registry=self.registry,
        )
        self.pending = Gauge(
            "mlcycle_log_pending_rows",
            "Rows the prediction log holds, not yet written",
            registry=self.registry,
        )
        self.ood = Counter(
            "mlcycle_ood_rows",
            "Rows the out-of-distribution detector flagged",
            ["version"],
            registry=self.registry,
        )


class Server:
    """State of one server process; the routes are its methods."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.metrics = _Metrics()
        self.executor = ThreadPoolExecutor(max_workers=cores(), thread_name_prefix="ort")
        self.deployment = Deployment(settings, self.executor, on_batch=self._on_batch)
        bound = {} if settings.log_max_rows is None else {"max_buffer_rows": settings.log_max_rows}
        self.log = PredictionLog(
            Path(settings.project) / ".mlcycle" / "log",
            flush_interval_s=settings.log_flush_s,
            **bound,
        )
        self.started = time.time()
        self.ids = RequestIds()
        self.recent = RecentIds()  # ids answered lately: /feedback says which labels matched
        self.guard = Guard(settings.allowed_hosts)
        self.admission = Admission(settings.max_queue_rows, settings.admission_wait_s)
        self.bodies = BodyBudget(settings.max_pending_body_bytes)
        self.connections = Connections(ConnectionLimits.of(settings))  # read by the protocol
        self.metrics.registry.register(
            LimitsCollector(self.connections, self.admission, self.bodies)
        )
        self._background: set[asyncio.Task[None]] = set()
        self._children: dict[tuple[str, ...], Any] = {}  # (metric, *labels) -> its child

    def _child(self, metric: str, *labels: str) -> Any:
        """``self.metrics.<metric>.labels(*labels)``, cached: each ``labels()`` call takes a lock."""
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = getattr(self.metrics, metric).labels(*labels)
        return child

    def count(self, route: str, status: int, seconds: float) -> None:
        """Count an answer and its latency."""
        self._child("requests", route, str(status)).inc()
        self._child("latency", route).observe(seconds)

    async def admit(self) -> float | None:
        """Rows reserved for a prediction request about to be read; None: answer it 503."""
        primary = self.deployment.primary
        estimate = primary.batcher.request_rows if primary is not None else 1.0
        return await self.admission.enter(estimate)

    def _on_batch(self, rows: int, seconds: float) -> None:
        self.metrics.batch_rows.observe(rows)

    # -- plumbing ---------------------------------------------------------------

    async def raw_body(self, request: _Call) -> bytes:
        declared = request.headers.get("content-length")
        limit = self.settings.max_body_bytes
        if declared is not None and (_ascii_int(declared) or 0) > limit:
            raise _HTTPError(413, f"request body of {declared} bytes is over the limit of {limit}")
        bodies = self.bodies  # bytes of unfinished bodies, server-wide: 503 past their budget
        if declared is not None and (_ascii_int(declared) or 0) > bodies.free:
            raise _HTTPError(503, bodies.message(_ascii_int(declared)), _BUSY_CLOSE)
        chunks, size, held = [], 0, 0
        try:
            while True:
                message = await request.receive()
                if message["type"] == "http.disconnect":
                    raise _ClientGone()
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise _HTTPError(413, f"request body is over the limit of {limit} bytes")
                if not bodies.take(len(chunk)):
                    raise _HTTPError(503, bodies.message(), _BUSY_CLOSE)
                held += len(chunk)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        finally:
            bodies.give(held)

    async def body(self, request: _Call) -> Any:
        raw = await self.raw_body(request)
        header = request.headers.get("inference-header-content-length")
        blob = b""
        if header is not None:
            size = _ascii_int(header)
            if size is None or size > len(raw):
                raise _HTTPError(
                    400,
                    f"Inference-Header-Content-Length {header!r}: expected the size in bytes "
                    f"of the JSON part, at most the body's {len(raw)}",
                )
            raw, blob = raw[:size], raw[size:]
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _HTTPError(400, f"request body is not valid JSON: {exc}") from None
        if header is not None:
            try:
                attach_binary_data(parsed, blob)
            except DataError as exc:
                raise _HTTPError(400, str(exc)) from None
        return parsed

    def feeds(self, model: LoadedModel, columns: Any) -> Feeds:
        """Validated feeds, or a 422 naming the column."""
        try:
            return model.predictor.feeds(columns, max_rows=self.settings.max_request_rows)
        except DataError as exc:
            raise _HTTPError(422, str(exc)) from None

    async def predict_rows(
        self, model: LoadedModel, feeds: Feeds, request_id: str, started: float
    ) -> dict[str, np.ndarray[Any, Any]]:
        rows = len(next(iter(feeds.values())))
        try:
            outputs = await model.infer(feeds, rows)
        except Overloaded as exc:
            raise _HTTPError(
                503, str(exc), {"Retry-After": str(max(1, round(exc.retry_after)))}
            ) from None
        except Exception as exc:
            # a failed inference is logged too: a rollout compares error rates per version
            self._log(model, "error", request_id, feeds, {}, started)
            if isinstance(exc, DataError):  # ONNX Runtime refused the inputs (registry._ort)
                raise _HTTPError(422, str(exc)) from None
            raise
        self._child("rows", str(model.version)).inc(rows)
        if OOD_FLAG in outputs:
            flagged = int(np.count_nonzero(outputs[OOD_FLAG]))
            self._child("ood", str(model.version)).inc(flagged)
        self._log(model, "serve", request_id, feeds, outputs, started)
        shadow = self.deployment.shadow()
        if shadow is not None and shadow is not model:
            task = asyncio.get_running_loop().create_task(
                self._shadow(shadow, feeds, rows, request_id)
            )
            self._background.add(task)  # keep a reference until it is done
            task.add_done_callback(self._background.discard)
        return outputs

    async def _shadow(self, model: LoadedModel, feeds: Any, rows: int, request_id: str) -> None:
        started = time.perf_counter()
        try:
            outputs = await model.infer(feeds, rows)
        except Exception:  # a shadow's failure never touches the answer
            return
        self._log(model, "shadow", request_id, feeds, outputs, started)

    def _log(
        self,
        model: LoadedModel,
        source: str,
        request_id: str,
        feeds: dict[str, np.ndarray[Any, Any]],
        outputs: dict[str, np.ndarray[Any, Any]],
        started: float,
    ) -> None:
        rows = len(next(iter(feeds.values())))
        ids = [request_id] if rows == 1 else row_ids(request_id, rows)
        if source == "serve":
            self.recent.add(request_id, rows)
        context = getattr(feeds, "context", None)  # sensitive, id, timestamp columns
        self.log.append(
            LoggedBatch(
                model=model.name,
                version=model.version,
                source=source,
                request_ids=ids,
                inputs=feeds if not context else {**feeds, **context},
                latency_ms=(time.perf_counter() - started) * 1000,
                labels=outputs.get("label"),
                probabilities=outputs.get("probabilities"),
                values=outputs.get("value"),
                ood_score=outputs.get(OOD_SCORE),
                ood=outputs.get(OOD_FLAG),
            )
        )

    def _model_for(self, request: _Call, version: str | None) -> LoadedModel:
        if not self.deployment.ready:
            if self.deployment.gone is not None:  # its version was deleted from the registry
                raise _HTTPError(404, self.deployment.gone)
            raise _HTTPError(503, "the model is not loaded yet", {"Retry-After": "1"})
        name = request.path_params.get("name")
        if name is not None and name != self.deployment.name:
            raise _HTTPError(
                404, f"model {name!r} is not served here (serving {self.deployment.name!r})"
            )
        if version is not None:
            number = _ascii_int(version)
            model = self.deployment.by_version(number) if number is not None else None
            if model is None:
                shown = version if number is not None else repr(version)
                raise _HTTPError(404, f"version {shown} of {name!r} is not loaded")
            return model
        return self.deployment.route(request.headers.get("x-request-key"))

    # -- routes -----------------------------------------------------------------

    async def server_metadata(self, request: _Call) -> _Reply:
        return _json({"name": "mlcycle", "version": __version__, "extensions": []})

    async def live(self, request: _Call) -> _Reply:
        return _json({"live": True})

    async def ready(self, request: _Call) -> _Reply:
        ready = self.deployment.ready
        return _json({"ready": ready}, status=200 if ready else 503)

    async def model_metadata(self, request: _Call) -> _Reply:
        model = self._model_for(request, request.path_params.get("version"))
        versions = [m.version for m in (self.deployment.primary, self.deployment.second) if m]
        return _json(model_metadata(model.name, versions, model.predictor.signature))

    async def model_ready(self, request: _Call) -> _Reply:
        model = self._model_for(request, request.path_params.get("version"))
        return _json({"name": model.name, "ready": True})

    async def infer(self, request: _Call) -> _Reply:
        started = time.perf_counter()
        body = await self.body(request)
        model = self._model_for(request, request.path_params.get("version"))
        key = request.headers.get("x-request-key")
        if key is None and isinstance(body, dict):
            params = body.get("parameters")
            if isinstance(params, dict) and isinstance(params.get("key"), str):
                key = params["key"]
                if request.path_params.get("version") is None:
                    model = self.deployment.route(key)
        predictor, limit = model.predictor, self.settings.max_request_rows
        try:
            feeds = numeric_feeds(body, predictor.plan, limit)  # the common case, quickly
        except DataError as exc:
            raise _HTTPError(422, str(exc)) from None
        if feeds is None:
            try:
                columns, _ = decode_inputs(body, predictor.signature, limit, predictor.input_specs)
            except DataError as exc:
                raise _HTTPError(400, str(exc)) from None
            feeds = self.feeds(model, columns)
        request_id = self._client_id(body.get("id"), None)
        try:
            names = requested_outputs(body, predictor.signature)
        except DataError as exc:
            raise _HTTPError(400, str(exc)) from None
        outputs = await self.predict_rows(model, feeds, request_id, started)
        answer: dict[str, Any] = {
            "model_name": model.name,
            "model_version": str(model.version),
            "id": request_id,
            "outputs": encode_outputs(
                {k: v for k, v in outputs.items() if k not in (OOD_SCORE, OOD_FLAG)}, names
            ),
        }
        if OOD_FLAG in outputs:
            answer["parameters"] = {
                "ood": outputs[OOD_FLAG].tolist(),
                "ood_score": outputs[OOD_SCORE].tolist(),
            }
        return _json(answer)

    async def predict(self, request: _Call) -> _Reply:
        started = time.perf_counter()
        body = await self.body(request)
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise _HTTPError(400, 'request body: expected {"records": [{column: value, ...}, ...]}')
        model = self._model_for(request, None)
        request_id = self._client_id(body.get("id"), request.headers.get("x-request-id"))
        feeds = self.feeds(model, body["records"])
        outputs = await self.predict_rows(model, feeds, request_id, started)
        answer: dict[str, Any] = {
            "model": model.name,
            "version": model.version,
            "request_id": request_id,
        }
        rows = len(body["records"])
        if rows > 1:  # the id of each row's answer, for /feedback
            answer["row_ids"] = row_ids(request_id, rows)
        if "value" in outputs:
            answer["values"] = outputs["value"].tolist()
        else:
            classes = model.predictor.classes or []
            answer["labels"] = [str(v) for v in outputs["label"].tolist()]
            answer["probabilities"] = [
                dict(zip(classes, row, strict=True)) for row in outputs["probabilities"].tolist()
            ]
        if OOD_FLAG in outputs:  # one per record, as labels and values are
            answer["ood"] = outputs[OOD_FLAG].tolist()
            answer["ood_score"] = outputs[OOD_SCORE].tolist()
        return _json(answer)

    def _client_id(self, given: Any, header: str | None) -> str:
        """The request's id: the body's ``id``, else ``X-Request-Id``, else a fresh one.

        An empty id counts as none given.
        """
        try:
            if given is not None and given != "":
                return client_id(given, "'id'")
            if header:
                return client_id(header, "X-Request-Id")
        except DataError as exc:
            raise _HTTPError(400, str(exc)) from None
        return self.ids.next()

    async def feedback(self, request: _Call) -> _Reply:
        """Ground-truth labels, checked against the served model; answered once on disk."""
        token = self.settings.feedback_token
        if token and not bearer_matches(request.headers.get("authorization"), token):
            raise _HTTPError(
                401,
                "/feedback needs 'Authorization: Bearer <token>'",
                {"WWW-Authenticate": "Bearer"},
            )
        body = await self.body(request)
        items = body.get("labels") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise _HTTPError(
                400, 'request body: expected {"labels": [{"request_id": "...", "label": ...}, ...]}'
            )
        if not self.deployment.ready or self.deployment.primary is None:
            raise _HTTPError(503, "the model is not loaded yet", {"Retry-After": "1"})
        served = [m.predictor for m in (self.deployment.primary, self.deployment.second) if m]
        try:
            rows = check_labels(items, LabelRule.of(served))
        except DataError as exc:
            raise _HTTPError(422, str(exc)) from None
        try:  # on disk before the answer, written off the event loop
            count = await asyncio.get_running_loop().run_in_executor(None, self.log.feedback, rows)
        except OSError as exc:
            cause = os.strerror(exc.errno) if exc.errno is not None else type(exc).__name__
            raise _HTTPError(
                503,
                f"the labels could not be written ({cause}); "
                "none of them is recorded: send them again later",
                {"Retry-After": str(RETRY_AFTER_S)},
            ) from None
        unmatched = [rid for rid, _ in rows if not self.recent.known(rid)]
        return _json(
            {
                "accepted": count,
                "matched": count - len(unmatched),
                "unmatched": unmatched[:MAX_UNMATCHED_SHOWN],
                "note": (
                    f"matched against the last {self.recent.limit:,} requests this server "
                    "process answered; labels of older requests are kept all the same"
                ),
            }
        )

    async def prometheus(self, request: _Call) -> _Reply:
        for role, model in (
            ("primary", self.deployment.primary),
            ("second", self.deployment.second),
        ):
            if model is not None:
                self.metrics.version.labels(role).set(model.version)
        self.metrics.dropped.set(self.log.dropped_rows)
        self.metrics.pending.set(self.log.pending_rows)
        return _Reply(
            generate_latest(self.metrics.registry), media_type="text/plain; version=0.0.4"
        )

    async def admin_reload(self, request: _Call) -> _Reply:
        token = self.settings.admin_token
        if not token:
            raise _HTTPError(403, "admin routes are off: start the server with an admin token")
        if not bearer_matches(request.headers.get("authorization"), token):
            raise _HTTPError(401, "admin routes need 'Authorization: Bearer <token>'")
        try:
            swapped = await self.deployment.check_aliases()
        except MlcycleError as exc:  # the new version cannot be served: keep the one in hand
            primary = self.deployment.primary
            raise _HTTPError(
                409,
                f"could not reload {self.settings.ref}: {exc}; still serving version "
                f"{primary.version if primary else None}",
            ) from None
        primary = self.deployment.primary  # None once its version was deleted
        return _json({"swapped": swapped, "version": primary.version if primary else None})


# Garbage-collector thresholds for a server that owns its process. With
# CPython's default (700, 10, 10) a busy server ran a young collection about
# 400 times a second, each scanning the objects of the requests in flight:
# 7% of the CPU and the slowest answers (30-input MLP at 32 connections on one
# core: 2,650 -> 3,150 req/s, p99 22 -> 17 ms with these). Cyclic garbage is
# rare on the request path (answers are freed by reference counting), so
# collecting 30 times less often costs little memory.
GC_THRESHOLDS = (20_000, 20, 50)


Handler = Callable[[_Call], Awaitable[_Reply]]


class ServingApp:
    """The server's ASGI app: prediction routes answered directly, the others by Starlette.

    ``POST /v2/models/{name}[/versions/{v}]/infer`` and ``POST /predict`` are
    matched by hand and answered from the ASGI scope: on a busy server
    Starlette's request objects, middleware and route table cost about as
    much as our validation. Every other route, 404/405 and the lifespan go
    through the Starlette app (``fallback``). Both paths share
    :meth:`answer`: the same error form, metrics and logging.
    """

    def __init__(self, server: Server, fallback: Starlette) -> None:
        self.server = server
        self.fallback = fallback
        self.state = fallback.state
        # read by the uvicorn protocol (mlcycle.serve._limits) for each connection
        self.connections = server.connections

    def _match(self, scope: Scope) -> tuple[Handler, str, dict[str, str]] | None:
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if path == "/predict":
            return self.server.predict, "predict", {}
        if path.startswith("/v2/models/") and path.endswith("/infer"):
            parts = path[len("/v2/models/") : -len("/infer")].split("/")
            if len(parts) == 1 and parts[0]:
                return self.server.infer, "infer", {"name": parts[0]}
            if len(parts) == 3 and parts[0] and parts[1] == "versions" and parts[2]:
                return self.server.infer, "infer", {"name": parts[0], "version": parts[2]}
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        post = scope["method"] == "POST"
        hit = self._match(scope) if post else None
        call = _Call(scope, receive, hit[2] if hit is not None else {})
        try:
            self.server.guard.check(call.headers, post)
        except Refusal as refusal:
            self.server.count(hit[1] if hit is not None else "refused", refusal.status, 0.0)
            await _send(send, _json({"error": refusal.message}, status=refusal.status))
            return
        if hit is None:
            await self.fallback(scope, receive, send)
            return
        method, route, _ = hit
        reserved = await self.server.admit()  # before the body is read (mlcycle.serve._admission)
        if reserved is None:
            self.server.count(route, 503, 0.0)
            message = self.server.admission.message
            await _send(send, _json({"error": message}, status=503, headers=_BUSY))
            return
        try:
            reply = await self.answer(method, route, call)
        finally:
            self.server.admission.leave(reserved)
        if reply is not None:  # else the client is gone: nobody to answer
            await _send(send, reply)

    async def answer(self, method: Handler, route: str, call: _Call) -> _Reply | None:
        """Run a route: errors become the protocol's error form; counted in the metrics."""
        started = time.perf_counter()
        try:
            reply = await method(call)
        except _HTTPError as exc:
            reply = _json({"error": exc.message}, status=exc.status, headers=exc.headers)
        except _ClientGone:
            self.server.count(route, 499, time.perf_counter() - started)
            return None
        except Exception:  # a bug: answer 500, keep serving, leave the traceback in the log
            _logger.exception("%s failed", route)
            reply = _json({"error": "internal server error"}, status=500)
        self.server.count(route, reply.status, time.perf_counter() - started)
        return reply


async def _send(send: Send, reply: _Reply) -> None:
    headers = [
        (b"content-type", reply.media_type.encode()),
        (b"content-length", str(len(reply.body)).encode()),
    ]
    if reply.headers:
        headers += [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


def create_app(settings: ServeSettings, *, own_process: bool = False) -> ServingApp:
    """The ASGI app serving ``settings.ref`` from the project at ``settings.project``.

    ``own_process``: the server is the only thing in this process (``mlcycle
    serve``), so it may tune the process-wide garbage collector: startup's
    objects are frozen out of later collections and young collections run
    less often (:data:`GC_THRESHOLDS`). Left off when the app is embedded
    (notebooks, tests, the demo), so the host keeps its own settings; so is
    :func:`~mlcycle.serve._process.pyarrow_without_pandas`.
    """
    if own_process:
        pyarrow_without_pandas()
    server = Server(settings)
    app: ServingApp

    def handler(method: Handler, route: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            reply = await app.answer(
                method, route, _Call(request.scope, request.receive, request.path_params)
            )
            if reply is None:
                return Response(status_code=499)
            return Response(reply.body, reply.status, reply.headers, reply.media_type)

        return endpoint

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await server.deployment.start()
        if own_process:
            gc.collect()
            gc.freeze()  # startup's objects live as long as the server: stop scanning them
            gc.set_threshold(*GC_THRESHOLDS)
        try:
            yield
        finally:
            await server.deployment.stop()
            server.log.close()
            server.executor.shutdown(wait=True)

    s = server
    routes = [
        Route("/v2", handler(s.server_metadata, "v2"), methods=["GET"]),
        Route("/v2/health/live", handler(s.live, "live"), methods=["GET"]),
        Route("/v2/health/ready", handler(s.ready, "ready"), methods=["GET"]),
        Route("/v2/models/{name}", handler(s.model_metadata, "metadata"), methods=["GET"]),
        Route(
            "/v2/models/{name}/versions/{version}",
            handler(s.model_metadata, "metadata"),
            methods=["GET"],
        ),
        Route("/v2/models/{name}/ready", handler(s.model_ready, "model_ready"), methods=["GET"]),
        Route(
            "/v2/models/{name}/versions/{version}/ready",
            handler(s.model_ready, "model_ready"),
            methods=["GET"],
        ),
        # answered by ServingApp before Starlette; listed so other methods get a 405
        Route("/v2/models/{name}/infer", handler(s.infer, "infer"), methods=["POST"]),
        Route(
            "/v2/models/{name}/versions/{version}/infer",
            handler(s.infer, "infer"),
            methods=["POST"],
        ),
        Route("/predict", handler(s.predict, "predict"), methods=["POST"]),
        Route("/feedback", handler(s.feedback, "feedback"), methods=["POST"]),
        Route("/metrics", handler(s.prometheus, "metrics"), methods=["GET"]),
        Route("/admin/reload", handler(s.admin_reload, "admin"), methods=["POST"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        # Starlette's own 404/405, in the protocol's error form
        assert isinstance(exc, HTTPException)
        body = orjson.dumps({"error": exc.detail})
        return Response(body, exc.status_code, exc.headers, "application/json")

    fallback = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error}
    )
    fallback.state.server = server
    app = ServingApp(server, fallback)
    return app
