"""A full disk under a real server: served rows and acknowledged labels are all kept, or counted."""

from __future__ import annotations

import logging
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pyarrow.compute as pc
import pytest

from mlcycle.predictions import PredictionLog
from tests._disk import FullDisk
from tests.serve.test_server import ROWS

REQUESTS = 100  # of 3 rows each


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


@pytest.mark.parametrize("buffer_rows", [None, 60], ids=["room", "overflow"])
def test_a_full_disk_loses_no_served_row_or_acknowledged_label_unsaid(
    serve: Any,
    served_project: Path,
    full_disk: FullDisk,
    caplog: pytest.LogCaptureFixture,
    buffer_rows: int | None,
) -> None:
    run = uuid.uuid4().hex[:8]
    served: list[str] = []
    acknowledged: list[str] = []
    with (
        serve(log_flush_s=0.05, log_max_rows=buffer_rows) as (url, app),
        httpx.Client(base_url=url) as client,
    ):
        log = app.server.log
        full_disk.full.set()
        for i in range(REQUESTS):
            answer = client.post("/predict", json={"records": ROWS, "id": f"{run}-{i}"})
            assert answer.status_code == 200, answer.text
            served += [f"{run}-{i}:{k}" for k in range(len(ROWS))]
        full_disk.wait_failures(full_disk.failures + 2)  # retried with every row taken in
        metrics = client.get("/metrics").text
        waiting = _metric(metrics, "mlcycle_log_pending_rows")
        dropped = _metric(metrics, "mlcycle_log_dropped_rows")
        assert waiting + dropped == len(served)
        assert dropped == (0 if buffer_rows is None else len(served) - buffer_rows)

        refused = client.post(
            "/feedback", json={"labels": [{"request_id": served[-1], "label": "no"}]}
        )
        assert refused.status_code == 503
        assert refused.headers["retry-after"].isdigit()
        assert "No space left on device" in refused.json()["error"]

        full_disk.full.clear()
        for start in range(0, 100, 10):  # 100 labels, acknowledged once on disk
            labels = [{"request_id": rid, "label": "yes"} for rid in served[start : start + 10]]
            fed = client.post("/feedback", json={"labels": labels})
            assert fed.json()["accepted"] == 10
            acknowledged += [label["request_id"] for label in labels]
        deadline = time.monotonic() + 30
        while log.pending_rows and time.monotonic() < deadline:
            time.sleep(0.02)
        metrics = client.get("/metrics").text
        dropped = _metric(metrics, "mlcycle_log_dropped_rows")
        assert _metric(metrics, "mlcycle_log_pending_rows") == 0

    reader = PredictionLog(served_project / ".mlcycle" / "log")
    table = reader.read("loyalty")
    feedback = reader.read_feedback()
    reader.close()
    mine = table.filter(pc.starts_with(table.column("request_id"), f"{run}-"))
    logged = mine.column("request_id").to_pylist()
    assert len(logged) == len(set(logged)) == len(served) - dropped  # each row once, or counted
    position = {rid: i for i, rid in enumerate(served)}
    assert [position[r] for r in logged] == sorted(position[r] for r in logged)  # in order
    assert dropped == (0 if buffer_rows is None else len(served) - buffer_rows)
    labelled = set(feedback.column("request_id").to_pylist())
    assert set(acknowledged) <= labelled and served[-1] not in labelled  # 503: not recorded

    errors = [
        r.getMessage()
        for r in caplog.records
        if r.name == "mlcycle.predictions" and r.levelno >= logging.ERROR
    ]
    assert len(errors) == 1, errors  # one line for the whole outage, naming the cause
    assert "No space left on device" in errors[0] and "rows waiting" in errors[0]
