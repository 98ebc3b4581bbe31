"""The loop watches batch-scored rows too, their inputs read through the log's references."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcycle.batch import score_file
from mlcycle.loop import tick
from mlcycle.predictions import REF_INPUT, PredictionLog
from tests.loop._stream import FEATURES, rows
from tests.loop.test_loop_e2e import LOOP, _champion

pytestmark = pytest.mark.slow  # a champion trained, two files scored, two ticks: ~15 s


def test_a_drifted_batch_logged_by_reference_triggers_the_loop(tmp_path: Path) -> None:
    project = _champion(tmp_path, "batch", LOOP)
    before = tmp_path / "before.parquet"
    rows(1200, changed=False, seed=2)[FEATURES].to_parquet(before)
    score_file("stream@champion", before, tmp_path / "a.parquet", project=project)
    quiet = tick(project).steps
    assert not any(s.startswith("triggered") for s in quiet), quiet

    after = tmp_path / "after.parquet"
    rows(1200, changed=True, seed=3)[FEATURES].to_parquet(after)
    score_file("stream@champion", after, tmp_path / "b.parquet", project=project)
    log = PredictionLog(project.root / ".mlcycle" / "log")
    logged = log.read("stream", source="batch")
    log.close()
    assert REF_INPUT in logged.column_names
    assert not [c for c in logged.column_names if c.startswith("in.")]  # no copy of the inputs
    steps = tick(project).steps
    assert any(s.startswith("triggered: dataset drift") for s in steps), steps
    project.close()
