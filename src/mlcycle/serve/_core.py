"""The serving core: what every protocol shares, and nothing of how a protocol is spelled.

A protocol module (:mod:`~mlcycle.serve._v2_rest`, :mod:`~mlcycle.serve._records`,
:mod:`~mlcycle.serve._v2_grpc`) decodes its requests into calls on a
:class:`Core` and encodes what comes back. The core finds the model a request
names (:meth:`Core.model_for`: primary, canary by request key, or a version),
turns columns into validated feeds (:meth:`Core.feeds`), predicts through the
model's batcher, logs every answered row, mirrors it to a shadow
(:meth:`Core.predict_rows`), checks bearer tokens, and counts answers in the
Prometheus metrics. It says no with :class:`~mlcycle.serve._errors.Refusal`,
whose HTTP status each protocol translates.

The bookkeeping of an answer (the prediction log, row and OOD counters, the
ids ``/feedback`` matches) is queued with ``call_soon``: it runs right after
the handler's step that sends the answer, so it is off the answer's latency
yet done before the event loop reads the next request.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from mlcycle._system import cores
from mlcycle.errors import DataError, MlcycleError, Overloaded
from mlcycle.predictions import LoggedBatch, PredictionLog
from mlcycle.registry import Feeds
from mlcycle.serve._admission import Admission
from mlcycle.serve._deployment import OOD_FLAG, OOD_SCORE, Deployment, LoadedModel, ServeSettings
from mlcycle.serve._errors import Refusal
from mlcycle.serve._feedback import RecentIds, bearer_matches
from mlcycle.serve._guard import Guard
from mlcycle.serve._ids import RequestIds, client_id
from mlcycle.serve._limits import BodyBudget, ConnectionLimits, Connections, LimitsCollector

if TYPE_CHECKING:
    from mlcycle.serve._explain import Explanations

__all__ = ["Core", "Metrics", "ascii_int", "row_ids"]

Outputs = dict[str, np.ndarray[Any, Any]]


def row_ids(request_id: str, rows: int) -> list[str]:
    """The ids of a multi-row request's rows in the log and for ``/feedback``: ``R:0``, ``R:1``…"""
    return [f"{request_id}:{i}" for i in range(rows)]


def ascii_int(text: str) -> int | None:
    """``text`` as a non-negative integer if it is ASCII digits only (``'²'.isdigit()`` is true)."""
    return int(text) if text.isascii() and text.isdigit() else None


class Metrics:
    """The Prometheus metrics of one server process, in a registry of their own."""

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


class Core:
    """State of one server process that every protocol shares."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.metrics = Metrics()
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
        self.explainer: Explanations | None = None  # /explain and V2's explain, set by the app
        self._background: set[asyncio.Task[None]] = set()
        self._answers: dict[tuple[str, int | str], tuple[Any, Any]] = {}
        self._children: dict[tuple[str, str], Any] = {}  # (metric, label) -> its child

    # -- metrics ----------------------------------------------------------------

    def count(self, route: str, code: int | str, seconds: float) -> None:
        """Count an answer (``code``: its HTTP status, or a gRPC status name) and its latency."""
        pair = self._answers.get((route, code))
        if pair is None:  # each labels() call takes a lock: look a child up once
            pair = self._answers[(route, code)] = (
                self.metrics.requests.labels(route, str(code)),
                self.metrics.latency.labels(route),
            )
        pair[0].inc()
        pair[1].observe(seconds)

    def _child(self, metric: str, label: str) -> Any:
        child = self._children.get((metric, label))
        if child is None:
            child = self._children[(metric, label)] = getattr(self.metrics, metric).labels(label)
        return child

    async def admit(self) -> float | None:
        """Rows reserved for a prediction request about to be read; None: answer it 503."""
        primary = self.deployment.primary
        estimate = primary.batcher.request_rows if primary is not None else 1.0
        return await self.admission.enter(estimate)

    def _on_batch(self, rows: int, seconds: float) -> None:
        self.metrics.batch_rows.observe(rows)

    def prometheus(self) -> bytes:
        """The metrics in Prometheus' text format, the served versions and the log's state fresh."""
        for role, model in (
            ("primary", self.deployment.primary),
            ("second", self.deployment.second),
        ):
            if model is not None:
                self.metrics.version.labels(role).set(model.version)
        self.metrics.dropped.set(self.log.dropped_rows)
        self.metrics.pending.set(self.log.pending_rows)
        return generate_latest(self.metrics.registry)

    # -- requests ---------------------------------------------------------------

    def model_for(self, name: str | None, version: str | None, key: str | None) -> LoadedModel:
        """The model that answers a request for ``name`` (``None``: the one served).

        ``version``: a version asked for by number (as the request spelled it);
        else the deployment routes by ``key`` (canary traffic is sticky by it).

        Raises:
            Refusal: 503 before the model is loaded, 404 for another model, a
                version not loaded, or a version deleted from the registry.
        """
        deployment = self.deployment
        if not deployment.ready:
            if deployment.gone is not None:  # its version was deleted from the registry
                raise Refusal(404, deployment.gone)
            raise Refusal(503, "the model is not loaded yet", {"Retry-After": "1"})
        if name is not None and name != deployment.name:
            raise Refusal(404, f"model {name!r} is not served here (serving {deployment.name!r})")
        if version is not None:
            number = ascii_int(version)
            model = deployment.by_version(number) if number is not None else None
            if model is None:
                shown = version if number is not None else repr(version)
                raise Refusal(404, f"version {shown} of {name!r} is not loaded")
            return model
        return deployment.route(key)

    def feeds(self, model: LoadedModel, columns: Any) -> Feeds:
        """Validated feeds, or a 422 naming the column."""
        try:
            return model.predictor.feeds(columns, max_rows=self.settings.max_request_rows)
        except DataError as exc:
            raise Refusal(422, str(exc)) from None

    def client_id(self, given: Any, header: str | None) -> str:
        """The request's id: the body's ``id``, else ``X-Request-Id``, else a fresh one.

        An empty id counts as none given.
        """
        try:
            if given is not None and given != "":
                return client_id(given, "'id'")
            if header:
                return client_id(header, "X-Request-Id")
        except DataError as exc:
            raise Refusal(400, str(exc)) from None
        return self.ids.next()

    def authorize(
        self, authorization: str | None, token: str, message: str, **challenge: str
    ) -> None:
        """Raise a 401 with ``message`` unless ``authorization`` is ``Bearer <token>``."""
        if not bearer_matches(authorization, token):
            raise Refusal(401, message, challenge or None)

    async def predict_rows(
        self, model: LoadedModel, feeds: Feeds, request_id: str, started: float
    ) -> Outputs:
        """``model``'s outputs for ``feeds``, batched with other requests; logged, and mirrored
        to the shadow version when there is one.

        Raises:
            Refusal: 503 with ``Retry-After`` when the model's queue is full.
        """
        rows = len(next(iter(feeds.values())))
        try:
            outputs = await model.infer(feeds, rows)
        except Overloaded as exc:
            raise Refusal(
                503, str(exc), {"Retry-After": str(max(1, round(exc.retry_after)))}
            ) from None
        except Exception as exc:
            # a failed inference is logged too: a rollout compares error rates per version
            self._log(model, "error", request_id, feeds, {}, started)
            if isinstance(exc, DataError):  # ONNX Runtime refused the inputs (registry._ort)
                raise Refusal(422, str(exc)) from None
            raise
        loop = asyncio.get_running_loop()
        loop.call_soon(self._served, model, request_id, feeds, outputs, rows, started)
        return outputs

    def _served(
        self,
        model: LoadedModel,
        request_id: str,
        feeds: Feeds,
        outputs: Outputs,
        rows: int,
        started: float,
    ) -> None:
        """An answer's bookkeeping, after it was sent: counters, the log, the shadow's copy."""
        version = str(model.version)
        self._child("rows", version).inc(rows)
        if OOD_FLAG in outputs:
            self._child("ood", version).inc(int(np.count_nonzero(outputs[OOD_FLAG])))
        self._log(model, "serve", request_id, feeds, outputs, started)
        shadow = self.deployment.shadow()
        if shadow is not None and shadow is not model:
            task = asyncio.get_running_loop().create_task(
                self._shadow(shadow, feeds, rows, request_id)
            )
            self._background.add(task)  # keep a reference until it is done
            task.add_done_callback(self._background.discard)

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

    # -- operations -------------------------------------------------------------

    async def reload(self) -> dict[str, Any]:
        """Follow the aliases now (``POST /admin/reload``): whether a version was swapped in.

        Raises:
            Refusal: 409 when the version an alias names now cannot be served.
        """
        try:
            swapped = await self.deployment.check_aliases()
        except MlcycleError as exc:  # the new version cannot be served: keep the one in hand
            primary = self.deployment.primary
            raise Refusal(
                409,
                f"could not reload {self.settings.ref}: {exc}; still serving version "
                f"{primary.version if primary else None}",
            ) from None
        primary = self.deployment.primary  # None once its version was deleted
        return {"swapped": swapped, "version": primary.version if primary else None}

    async def start(self) -> None:
        await self.deployment.start()

    async def stop(self) -> None:
        await self.deployment.stop()
        self.log.close()
        self.executor.shutdown(wait=True)
