"""The ASGI app: Open Inference Protocol (V2) routes, ``/predict``, feedback, metrics.

Every request is validated against the model's signature before it reaches
ONNX Runtime; bad input is a 400/413/422 naming the input, never a crash. A
full queue answers 503 with ``Retry-After``. Each answer names the model
version that produced it and is appended to the prediction log off the hot
path. Admin routes need the bearer token the server was started with.
When the version has an out-of-distribution detector (``ood.json``), each
row's flag and score ride along: per row in ``/predict``, as response
``parameters`` in V2, as ``ood``/``ood_score`` columns in the log, and
counted in ``mlcycle_ood_rows_total``.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import os
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlcycle import __version__
from mlcycle.errors import DataError
from mlcycle.predictions import LoggedBatch, PredictionLog
from mlcycle.serve._batcher import Overloaded
from mlcycle.serve._deployment import OOD_FLAG, OOD_SCORE, Deployment, LoadedModel, ServeSettings
from mlcycle.serve._v2 import attach_binary_data, decode_inputs, encode_outputs, model_metadata

__all__ = ["create_app"]


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


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
            "mlcycle_log_dropped_rows", "Rows the prediction log dropped", registry=self.registry
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
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2
        self.executor = ThreadPoolExecutor(max_workers=max(1, cores), thread_name_prefix="ort")
        self.deployment = Deployment(settings, self.executor, on_batch=self._on_batch)
        self.log = PredictionLog(
            Path(settings.project) / ".mlcycle" / "log", flush_interval_s=settings.log_flush_s
        )
        self.started = time.time()
        self._background: set[asyncio.Task[None]] = set()

    def _on_batch(self, rows: int, seconds: float) -> None:
        self.metrics.batch_rows.observe(rows)

    # -- plumbing ---------------------------------------------------------------

    async def raw_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        limit = self.settings.max_body_bytes
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _HTTPError(413, f"request body of {declared} bytes is over the limit of {limit}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _HTTPError(413, f"request body is over the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def body(self, request: Request) -> Any:
        raw = await self.raw_body(request)
        header = request.headers.get("inference-header-content-length")
        blob = b""
        if header is not None:
            if not header.isdigit() or int(header) > len(raw):
                raise _HTTPError(
                    400, f"Inference-Header-Content-Length {header!r} overruns the body"
                )
            raw, blob = raw[: int(header)], raw[int(header) :]
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

    async def predict_rows(
        self, model: LoadedModel, columns: Any, request_id: str, started: float
    ) -> dict[str, np.ndarray[Any, Any]]:
        try:
            feeds = model.predictor.feeds(columns, max_rows=self.settings.max_request_rows)
        except DataError as exc:
            raise _HTTPError(422, str(exc)) from None
        rows = len(next(iter(feeds.values())))
        try:
            outputs = await model.infer(feeds, rows)
        except Overloaded as exc:
            raise _HTTPError(
                503, str(exc), {"Retry-After": str(max(1, round(exc.retry_after)))}
            ) from None
        except Exception:
            # a failed inference is logged too: a rollout compares error rates per version
            self._log(model, "error", request_id, feeds, {}, started)
            raise
        self.metrics.rows.labels(str(model.version)).inc(rows)
        if OOD_FLAG in outputs:
            self.metrics.ood.labels(str(model.version)).inc(int(outputs[OOD_FLAG].sum()))
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
        ids = [request_id] if rows == 1 else [f"{request_id}:{i}" for i in range(rows)]
        self.log.append(
            LoggedBatch(
                model=model.name,
                version=model.version,
                source=source,
                request_ids=ids,
                inputs=feeds,
                latency_ms=(time.perf_counter() - started) * 1000,
                labels=outputs.get("label"),
                probabilities=outputs.get("probabilities"),
                values=outputs.get("value"),
                ood_score=outputs.get(OOD_SCORE),
                ood=outputs.get(OOD_FLAG),
            )
        )

    def _model_for(self, request: Request, version: str | None) -> LoadedModel:
        if not self.deployment.ready:
            raise _HTTPError(503, "the model is not loaded yet", {"Retry-After": "1"})
        name = request.path_params.get("name")
        if name is not None and name != self.deployment.name:
            raise _HTTPError(
                404, f"model {name!r} is not served here (serving {self.deployment.name!r})"
            )
        if version is not None:
            model = self.deployment.by_version(int(version)) if version.isdigit() else None
            if model is None:
                raise _HTTPError(404, f"version {version} of {name!r} is not loaded")
            return model
        return self.deployment.route(request.headers.get("x-request-key"))

    # -- routes -----------------------------------------------------------------

    async def server_metadata(self, request: Request) -> Response:
        return _json({"name": "mlcycle", "version": __version__, "extensions": []})

    async def live(self, request: Request) -> Response:
        return _json({"live": True})

    async def ready(self, request: Request) -> Response:
        ready = self.deployment.ready
        return _json({"ready": ready}, status=200 if ready else 503)

    async def model_metadata(self, request: Request) -> Response:
        model = self._model_for(request, request.path_params.get("version"))
        versions = [m.version for m in (self.deployment.primary, self.deployment.second) if m]
        return _json(model_metadata(model.name, versions, model.predictor.signature))

    async def model_ready(self, request: Request) -> Response:
        model = self._model_for(request, request.path_params.get("version"))
        return _json({"name": model.name, "ready": True})

    async def infer(self, request: Request) -> Response:
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
        try:
            columns, _ = decode_inputs(
                body, model.predictor.signature, self.settings.max_request_rows
            )
        except DataError as exc:
            raise _HTTPError(400, str(exc)) from None
        request_id = str(body.get("id") or uuid.uuid4().hex)
        outputs = await self.predict_rows(model, columns, request_id, started)
        requested = body.get("outputs")
        names = (
            [str(o.get("name")) for o in requested if isinstance(o, dict)]
            if isinstance(requested, list)
            else None
        )
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

    async def predict(self, request: Request) -> Response:
        started = time.perf_counter()
        body = await self.body(request)
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise _HTTPError(400, 'request body: expected {"records": [{column: value, ...}, ...]}')
        model = self._model_for(request, None)
        request_id = str(body.get("id") or request.headers.get("x-request-id") or uuid.uuid4().hex)
        outputs = await self.predict_rows(model, body["records"], request_id, started)
        answer: dict[str, Any] = {
            "model": model.name,
            "version": model.version,
            "request_id": request_id,
        }
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

    async def feedback(self, request: Request) -> Response:
        body = await self.body(request)
        items = body.get("labels") if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and isinstance(i.get("request_id"), str) and "label" in i
            for i in items
        ):
            raise _HTTPError(
                400, 'request body: expected {"labels": [{"request_id": "...", "label": ...}, ...]}'
            )
        count = self.log.feedback((i["request_id"], i["label"]) for i in items)
        return _json({"accepted": count})

    async def prometheus(self, request: Request) -> Response:
        for role, model in (
            ("primary", self.deployment.primary),
            ("second", self.deployment.second),
        ):
            if model is not None:
                self.metrics.version.labels(role).set(model.version)
        self.metrics.dropped.set(self.log.dropped_rows)
        return Response(
            generate_latest(self.metrics.registry), media_type="text/plain; version=0.0.4"
        )

    async def admin_reload(self, request: Request) -> Response:
        token = self.settings.admin_token
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not token:
            raise _HTTPError(403, "admin routes are off: start the server with an admin token")
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise _HTTPError(401, "admin routes need 'Authorization: Bearer <token>'")
        swapped = await self.deployment.check_aliases()
        assert self.deployment.primary is not None
        return _json({"swapped": swapped, "version": self.deployment.primary.version})


def create_app(settings: ServeSettings) -> Starlette:
    """The ASGI app serving ``settings.ref`` from the project at ``settings.project``."""
    server = Server(settings)

    def handler(method: Any, route: str) -> Any:
        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response: Response = await method(request)
            except _HTTPError as exc:
                response = _json({"error": exc.message}, status=exc.status, headers=exc.headers)
            server.metrics.requests.labels(route, str(response.status_code)).inc()
            server.metrics.latency.labels(route).observe(time.perf_counter() - started)
            return response

        return endpoint

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await server.deployment.start()
        gc.collect()
        gc.freeze()  # startup's objects live as long as the server: stop scanning them
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
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.server = server
    return app
