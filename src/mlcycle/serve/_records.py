"""The records protocol: ``POST /predict`` with rows as JSON objects, ``POST /feedback`` labels.

``{"records": [{column: value, ...}, ...]}`` in, one answer per record out:
``labels`` and ``probabilities`` by class for a classifier, ``values`` for a
regressor, ``ood``/``ood_score`` when the version has a detector, and for a
request of several rows ``row_ids`` (``R:0``, ``R:1``…), the ids that
``/feedback`` takes labels for. The request id is the body's ``id``, else the
``X-Request-Id`` header, else a fresh one.

``/feedback`` takes ``{"labels": [{"request_id": ..., "label": ...}, ...]}``,
checked against the served versions (:mod:`~mlcycle.serve._feedback`) and on
disk before the answer, which says how many of the ids this process answered.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from mlcycle.errors import DataError
from mlcycle.serve._core import Core, row_ids
from mlcycle.serve._deployment import OOD_FLAG, OOD_SCORE
from mlcycle.serve._errors import Refusal
from mlcycle.serve._feedback import RETRY_AFTER_S, LabelRule, check_labels
from mlcycle.serve._http import Call, Reply, Route, json_body, json_reply

__all__ = ["MAX_UNMATCHED_SHOWN", "Records"]

MAX_UNMATCHED_SHOWN = 20


class Records:
    """The routes of the records protocol."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/predict", "predict", self.predict, admit=True),
            Route("POST", "/feedback", "feedback", self.feedback),
        ]

    async def predict(self, call: Call) -> Reply:
        core = self.core
        started = time.perf_counter()
        body = await json_body(call, core)
        if type(body) is not dict or type(body.get("records")) is not list:
            raise Refusal(400, 'request body: expected {"records": [{column: value, ...}, ...]}')
        headers = call.headers
        model = core.model_for(None, None, headers.get("x-request-key"))
        request_id = core.client_id(body.get("id"), headers.get("x-request-id"))
        records = body["records"]
        feeds = core.feeds(model, records)
        outputs = await core.predict_rows(model, feeds, request_id, started)
        answer: dict[str, Any] = {
            "model": model.name,
            "version": model.version,
            "request_id": request_id,
        }
        if len(records) > 1:  # the id of each row's answer, for /feedback
            answer["row_ids"] = row_ids(request_id, len(records))
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
        return json_reply(answer)

    async def feedback(self, call: Call) -> Reply:
        """Ground-truth labels, checked against the served model; answered once on disk."""
        core = self.core
        token = core.settings.feedback_token
        if token:
            core.authorize(
                call.headers.get("authorization"),
                token,
                "/feedback needs 'Authorization: Bearer <token>'",
                **{"WWW-Authenticate": "Bearer"},
            )
        body = await json_body(call, core)
        items = body.get("labels") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise Refusal(
                400, 'request body: expected {"labels": [{"request_id": "...", "label": ...}, ...]}'
            )
        deployment = core.deployment
        if not deployment.ready or deployment.primary is None:
            raise Refusal(503, "the model is not loaded yet", {"Retry-After": "1"})
        served = [m.predictor for m in (deployment.primary, deployment.second) if m]
        try:
            rows = check_labels(items, LabelRule.of(served))
        except DataError as exc:
            raise Refusal(422, str(exc)) from None
        try:  # on disk before the answer, written off the event loop
            count = await asyncio.get_running_loop().run_in_executor(None, core.log.feedback, rows)
        except OSError as exc:
            cause = os.strerror(exc.errno) if exc.errno is not None else type(exc).__name__
            raise Refusal(
                503,
                f"the labels could not be written ({cause}); "
                "none of them is recorded: send them again later",
                {"Retry-After": str(RETRY_AFTER_S)},
            ) from None
        unmatched = [rid for rid, _ in rows if not core.recent.known(rid)]
        return json_reply(
            {
                "accepted": count,
                "matched": count - len(unmatched),
                "unmatched": unmatched[:MAX_UNMATCHED_SHOWN],
                "note": (
                    f"matched against the last {core.recent.limit:,} requests this server "
                    "process answered; labels of older requests are kept all the same"
                ),
            }
        )
