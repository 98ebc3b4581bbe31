"""Parquet row groups read whole or streamed give the same chunks, from any chunk on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mlcycle.batch._source as source_module
from mlcycle.batch._source import open_source


@pytest.mark.parametrize("start", [0, 3])
def test_whole_and_streamed_row_groups_give_the_same_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: int
) -> None:
    rng = np.random.default_rng(0)
    table = pa.table({"row_id": np.arange(5_000), "x": rng.normal(size=5_000), "y": ["a"] * 5_000})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=700)
    source = open_source(tmp_path / "in.parquet")

    whole = list(source.chunks(["row_id", "x"], 1_000, start=start))
    monkeypatch.setattr(source_module, "_WHOLE_GROUP_BYTES", 0)  # every row group streamed
    streamed = list(source.chunks(["row_id", "x"], 1_000, start=start))

    assert [t.num_rows for t in whole] == [1_000] * (5 - start)
    assert [t.num_rows for t in streamed] == [t.num_rows for t in whole]
    for a, b in zip(whole, streamed, strict=True):
        assert a.equals(b)
    assert whole[0].column("row_id")[0].as_py() == start * 1_000
