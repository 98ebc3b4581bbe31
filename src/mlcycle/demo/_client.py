"""A client that replays a labelled stream through a served model, labels posted late.

The demo and the loop's end-to-end test drive a real loopback server with it:
one keep-alive connection (reopened if the server closed it while idle),
requests of a few rows keyed for sticky canary routing, then the true labels
to ``/feedback`` for every row answered.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["ReplayClient", "replaying"]


class ReplayClient:
    """Posts to one server over a keep-alive connection; records request latencies."""

    def __init__(self, url: str, per_request: int = 10) -> None:
        self.host = url.removeprefix("http://")
        self.per_request = per_request
        self.connection = http.client.HTTPConnection(self.host, timeout=30)
        self.latencies: list[float] = []

    def post(self, path: str, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        """POST ``body`` as JSON; the answer, or RuntimeError on a non-200."""
        headers = {"content-type": "application/json", **({"x-request-key": key} if key else {})}
        data = json.dumps(body).encode()
        started = time.perf_counter()
        try:
            self.connection.request("POST", path, data, headers)
            response = self.connection.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # the server closes an idle keep-alive connection (while the loop retrains, say)
            self.connection.close()
            self.connection.request("POST", path, data, headers)
            response = self.connection.getresponse()
        answer: dict[str, Any] = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"the server answered {response.status}: {answer}")
        if path == "/predict":
            self.latencies.append((time.perf_counter() - started) * 1000)
        return answer

    def replay(
        self, frame: pd.DataFrame, features: list[str], target: str, *, labelled: bool = True
    ) -> dict[str, Any]:
        """Predict every row, then post the true labels late (unless not ``labelled``).

        Returns:
            ``{"accuracy": share of served answers that were right,
            "versions": {version: rows it answered}}``.
        """
        labels: list[dict[str, Any]] = []
        correct = 0
        versions: dict[int, int] = {}
        for start in range(0, len(frame), self.per_request):
            part = frame.iloc[start : start + self.per_request]
            rid = uuid.uuid4().hex
            answer = self.post(
                "/predict", {"id": rid, "records": part[features].to_dict("records")}, key=rid
            )
            truth = part[target].tolist()
            correct += sum(a == t for a, t in zip(answer["labels"], truth, strict=True))
            versions[answer["version"]] = versions.get(answer["version"], 0) + len(part)
            ids = answer.get("row_ids") or [rid]  # the id of each row's answer
            labels += [{"request_id": i, "label": t} for i, t in zip(ids, truth, strict=True)]
        if labelled:
            self.post("/feedback", {"labels": labels})
        return {"accuracy": correct / max(len(frame), 1), "versions": versions}

    def close(self) -> None:
        self.connection.close()


@contextmanager
def replaying(root: Path, ref: str) -> Iterator[ReplayClient]:
    """Serve ``ref`` of the project at ``root`` on loopback (following aliases and the
    loop's traffic split, log written every 0.1 s) and yield a client for it."""
    from mlcycle.serve import ServeSettings, create_app, serve_in_thread

    settings = ServeSettings(project=root, ref=ref, poll_s=0.2, log_flush_s=0.1)
    with serve_in_thread(create_app(settings)) as url:
        client = ReplayClient(url)
        try:
            yield client
        finally:
            client.close()
