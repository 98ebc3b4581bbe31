"""Recent traffic from the prediction log: requests per version and source, bounded reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from mlcycle.predictions import LoggedBatch, PredictionLog, recent_traffic


def write(root: Path, batches: list[tuple[int, str, int, float]]) -> None:
    log = PredictionLog(root)
    for n, (version, source, rows, ms) in enumerate(batches):
        ids = [f"r{n}:{i}" for i in range(rows)]
        x = np.zeros(rows, dtype=np.float32)
        log.append(LoggedBatch("m", version, source, ids, {"x": x}, ms))
    log.close()


def test_requests_rates_percentiles_and_error_rate(tmp_path: Path) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    write(tmp_path, [(1, "serve", 1, 1.0), (1, "serve", 4, 3.0), (1, "error", 1, 0.1)])
    write(tmp_path, [(2, "shadow", 2, 7.0)])
    found = recent_traffic(tmp_path, before, now=before + timedelta(seconds=10))
    got = {(v.version, v.source): (v.requests, v.rows) for v in found.versions}
    assert got == {(1, "serve"): (2, 5), (1, "error"): (1, 1), (2, "shadow"): (1, 2)}
    serve = next(v for v in found.versions if v.source == "serve")
    assert serve.latency_ms["p50"] == 2.0  # one figure per request, not per row
    assert serve.rate_per_s == 2 / 10
    assert found.error_rate("m", 1) == 1 / 3 and found.error_rate("m", 2) is None
    assert sum(n for _, n in found.per_minute["m"]["v1 serve"]) == 2


def test_only_the_window_is_read(tmp_path: Path) -> None:
    assert recent_traffic(tmp_path, datetime.now(UTC)).versions == []  # no log at all
    write(tmp_path, [(1, "serve", 1, 1.0)])
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert recent_traffic(tmp_path, later).versions == []  # written before the window
    write(tmp_path, [(1, "serve", 1, 1.0)] * 3)
    start = datetime.now(UTC) - timedelta(minutes=1)
    capped = recent_traffic(tmp_path, start, max_rows=1)
    assert capped.truncated and sum(v.rows for v in capped.versions) < 4


def test_a_segment_is_chosen_by_when_it_was_written_not_by_its_name(tmp_path: Path) -> None:
    # A row's day folder is the row's day and a segment's name its writer's clock: a row
    # logged before midnight and written after (or written late, after a full disk) has a
    # name that reads as earlier than the window though it was written inside it.
    now = datetime.now(UTC)
    since = now - timedelta(hours=6)
    log = PredictionLog(tmp_path)
    log.append(LoggedBatch("m", 1, "serve", ["late"], {"x": np.zeros(1, np.float32)}, 1.0,
                           at=now - timedelta(hours=2)))  # fmt: skip
    log.close()
    [segment] = (tmp_path / "predictions").rglob("*.parquet")
    early = since - timedelta(hours=2 if (since - timedelta(hours=1)).hour == 0 else 1)
    segment.rename(segment.with_name(f"{early:%H%M%S%f}" + segment.name[12:]))
    found = recent_traffic(tmp_path, since, now=now)
    assert [(v.version, v.requests) for v in found.versions] == [(1, 1)]
