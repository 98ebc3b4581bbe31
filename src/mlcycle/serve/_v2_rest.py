"""The Open Inference Protocol (KServe V2): its operations on the core, and its REST routes.

:class:`OpenInference` is the protocol's meaning, whatever carries it: a
request body in the protocol's JSON form (``{"inputs": [{name, shape,
datatype, data}], "outputs": [...], "parameters": {...}, "id": ...}``, see
:mod:`~mlcycle.serve._v2`) goes in, the answer's tensors come out. The REST
routes here (:class:`V2Rest`) and the gRPC service
(:mod:`~mlcycle.serve._v2_grpc`) are two encodings of the same calls, so
both validate alike, answer alike and share batching, the log and metrics.

A version with an out-of-distribution detector adds each row's flag and
score as response ``parameters`` (``ood``, ``ood_score``).
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from mlcycle._version import __version__
from mlcycle.errors import DataError
from mlcycle.serve._core import Core, Outputs
from mlcycle.serve._deployment import OOD_FLAG, OOD_SCORE, LoadedModel
from mlcycle.serve._errors import Refusal
from mlcycle.serve._explain import explain_options
from mlcycle.serve._http import Call, Reply, Route, json_body, json_reply
from mlcycle.serve._v2 import (
    decode_inputs,
    encode_outputs,
    model_metadata,
    numeric_feeds,
    requested_outputs,
)

__all__ = ["Inferred", "OpenInference", "V2Rest"]


class Inferred(NamedTuple):
    """What an infer request produced, before a transport encodes it."""

    model: LoadedModel
    request_id: str
    outputs: Outputs  # the graph's outputs, without the OOD flags and scores
    requested: list[str] | None  # the outputs asked for (None: all)
    ood: dict[str, list[Any]] | None  # ood and ood_score, row by row, when the version has them
    explanations: list[dict[str, Any]] | None = None  # with parameters.explain: true


class OpenInference:
    """The protocol's operations against the core, on its JSON form."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "mlcycle", "version": __version__, "extensions": []}

    def ready(self) -> bool:
        return self.core.deployment.ready

    def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        model = self.core.model_for(name, version, None)
        deployment = self.core.deployment
        versions = [m.version for m in (deployment.primary, deployment.second) if m]
        return model_metadata(model.name, versions, model.predictor.signature)

    def model_ready(self, name: str, version: str | None) -> dict[str, Any]:
        model = self.core.model_for(name, version, None)
        return {"name": model.name, "ready": True}

    async def infer(
        self, body: Any, name: str, version: str | None, key: str | None, started: float
    ) -> Inferred:
        """Predict for an infer request's ``body``.

        ``key``: the ``X-Request-Key`` the request came with, if any (else the
        body's ``parameters.key``): canary traffic is sticky by it.

        Raises:
            Refusal: 400 for a malformed request, 422 for values the model
                cannot take (both naming the input), 404/503 as
                :meth:`~mlcycle.serve._core.Core.model_for`.
        """
        core = self.core
        if key is None and type(body) is dict:
            params = body.get("parameters")
            if type(params) is dict and type(params.get("key")) is str:
                key = params["key"]
        model = core.model_for(name, version, key)
        predictor, limit = model.predictor, core.settings.max_request_rows
        try:
            feeds = numeric_feeds(body, predictor.plan, limit)  # the common case, quickly
        except DataError as exc:
            raise Refusal(422, str(exc)) from None
        if feeds is None:
            try:
                columns, _ = decode_inputs(body, predictor.signature, limit, predictor.input_specs)
            except DataError as exc:
                raise Refusal(400, str(exc)) from None
            feeds = core.feeds(model, columns)
        request_id = core.client_id(body.get("id"), None)
        try:
            names = requested_outputs(body, predictor.signature)
        except DataError as exc:
            raise Refusal(400, str(exc)) from None
        params = body.get("parameters") if type(body) is dict else None
        explain = type(params) is dict and params.get("explain") is True
        if explain:  # checked before predicting: a bad option predicts nothing
            assert type(params) is dict
            target, permutations = explain_options(params, "explain_")
        outputs = await core.predict_rows(model, feeds, request_id, started)
        ood = None
        if OOD_FLAG in outputs:
            ood = {"ood": outputs[OOD_FLAG].tolist(), "ood_score": outputs[OOD_SCORE].tolist()}
            outputs = {k: v for k, v in outputs.items() if k not in (OOD_SCORE, OOD_FLAG)}
        explanations = None
        if explain and core.explainer is not None:
            # after the prediction, on the explaining workers: the answer waits, predicting not
            found = await core.explainer.run(model, feeds, target, permutations)
            explanations = found.to_records()
        return Inferred(model, request_id, outputs, names, ood, explanations)


class V2Rest:
    """The protocol over REST: ``/v2/...`` routes answering JSON."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.protocol = OpenInference(core)

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/v2", "v2", self.server_metadata),
            Route("GET", "/v2/health/live", "live", self.live),
            Route("GET", "/v2/health/ready", "ready", self.ready),
            Route("GET", "/v2/models/{name}", "metadata", self.model_metadata),
            Route("GET", "/v2/models/{name}/versions/{version}", "metadata", self.model_metadata),
            Route("GET", "/v2/models/{name}/ready", "model_ready", self.model_ready),
            Route(
                "GET", "/v2/models/{name}/versions/{version}/ready", "model_ready", self.model_ready
            ),
            Route("POST", "/v2/models/{name}/infer", "infer", self.infer, admit=True),
            Route(
                "POST",
                "/v2/models/{name}/versions/{version}/infer",
                "infer",
                self.infer,
                admit=True,
            ),
        ]

    async def server_metadata(self, call: Call) -> Reply:
        return json_reply(self.protocol.server_metadata())

    async def live(self, call: Call) -> Reply:
        return json_reply({"live": True})

    async def ready(self, call: Call) -> Reply:
        ready = self.protocol.ready()
        return json_reply({"ready": ready}, status=200 if ready else 503)

    async def model_metadata(self, call: Call) -> Reply:
        params = call.path_params
        return json_reply(self.protocol.model_metadata(params["name"], params.get("version")))

    async def model_ready(self, call: Call) -> Reply:
        params = call.path_params
        return json_reply(self.protocol.model_ready(params["name"], params.get("version")))

    async def infer(self, call: Call) -> Reply:
        started = time.perf_counter()
        body = await json_body(call, self.core)
        params = call.path_params
        done = await self.protocol.infer(
            body,
            params["name"],
            params.get("version"),
            call.headers.get("x-request-key"),
            started,
        )
        answer: dict[str, Any] = {
            "model_name": done.model.name,
            "model_version": str(done.model.version),
            "id": done.request_id,
            "outputs": encode_outputs(done.outputs, done.requested),
        }
        if done.ood is not None:
            answer["parameters"] = done.ood
        if done.explanations is not None:
            answer.setdefault("parameters", {})["explanations"] = done.explanations
        return json_reply(answer)
