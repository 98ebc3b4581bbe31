"""Reading a window of the prediction log reads only what the window needs, in time order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from mlcycle.predictions import LoggedBatch, PredictionLog


def _batch(version: int, start: int, n: int, at: datetime, source: str = "serve") -> LoggedBatch:
    return LoggedBatch(
        "m",
        version,
        source,
        [f"r{start + i}" for i in range(n)],
        {"x": np.arange(start, start + n, dtype=np.float32)},
        0.5,
        labels=np.array(["a"] * n, dtype=object),
        at=at,
    )


def _log(root: Path) -> PredictionLog:
    """Four segments over three days: v1 on day 1 and 2, v2 on day 3, one shadow batch."""
    log = PredictionLog(root)
    day = datetime(2026, 11, 25, 12, tzinfo=UTC)
    for i, (version, offset, source) in enumerate(
        [(1, 0, "serve"), (1, 1, "serve"), (2, 2, "serve"), (2, 2, "shadow")]
    ):
        log.append(_batch(version, i * 10, 10, day + timedelta(days=offset), source))
        log.flush()  # one segment each
    log.feedback([("r5", "b"), ("r25", "a")])
    log.close()
    return log


def test_last_since_version_and_source_select_the_window(tmp_path: Path) -> None:
    log = _log(tmp_path)
    everything = log.read("m")
    assert everything.num_rows == 40
    assert everything.column("time").to_pylist() == sorted(everything.column("time").to_pylist())
    last = log.read("m", source="serve", last=15)
    assert last.column("request_id").to_pylist() == [f"r{i}" for i in range(15, 30)]
    assert log.read("m", version=2, source="serve").column("request_id").to_pylist() == [
        f"r{i}" for i in range(20, 30)
    ]
    since = datetime(2026, 11, 26, 0, tzinfo=UTC)
    assert log.read("m", source="serve", since=since).num_rows == 20
    assert log.read("m", version=1, since=since).num_rows == 10
    assert log.read("m", source="shadow").num_rows == 10
    assert log.read("nobody").num_rows == 0
    assert log.read_feedback().column("request_id").to_pylist() == ["r5", "r25"]


def test_a_last_window_reads_only_the_newest_segments(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    log = _log(tmp_path)
    opened: list[str] = []
    real = pq.read_table

    def spy(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pq, "read_table", spy)
    assert log.read("m", version=2, source="serve", last=5).num_rows == 5
    assert len(opened) == 2 and all("/v2/" in p for p in opened)  # v2's two segments only
    opened.clear()
    log.read("m", since=datetime(2026, 11, 27, 0, tzinfo=UTC))
    assert len(opened) == 2 and all("date=2026-11-27" in p for p in opened)
