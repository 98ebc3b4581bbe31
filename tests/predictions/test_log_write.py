"""What the log writes: the same rows whether ids come as Python strings or an Arrow array."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from mlcycle.predictions import LoggedBatch, PredictionLog

AT = datetime(2026, 11, 27, 12, tzinfo=UTC)


def _batch(ids: object, labels: np.ndarray, start: int) -> LoggedBatch:
    n = len(labels)
    return LoggedBatch(
        "m",
        1,
        "batch",
        ids,  # type: ignore[arg-type]
        {"x": np.arange(start, start + n, dtype=np.float32), "y": np.ones(n, dtype=np.float32)},
        0.5,
        labels=labels,
        probabilities=np.full((n, 2), 0.5, dtype=np.float32),
        at=AT,
    )


def test_ids_as_arrow_or_python_and_labels_of_any_kind(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.append(_batch(["a0", "a1"], np.array(["yes", "no"], dtype=object), 0))
    log.append(_batch(pa.array(["b0", "b1", "b2"]), np.array(["no", "no", "yes"], dtype=object), 2))
    log.append(_batch(("c0",), np.array([7], dtype=np.int64), 5))  # labels that are not text
    log.flush()
    log.append(_batch(pa.array(["d0"]), np.array(["yes"], dtype=object), 6))  # a lone batch
    log.close()
    table = log.read("m")
    assert table.column("request_id").to_pylist() == ["a0", "a1", "b0", "b1", "b2", "c0", "d0"]
    assert table.column("label").to_pylist() == ["yes", "no", "no", "no", "yes", "7", "yes"]
    assert table.column("in.x").to_pylist() == [0, 1, 2, 3, 4, 5, 6]
    assert table.schema.field("label").type == pa.string()
