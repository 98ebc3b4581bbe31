"""A loop killed mid-training finds its run again by the id its state records.

No training here: the runs are rows inserted through the store, as many as a
busy project has, and the state is written as the loop writes it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlcycle.loop import LoopState, read_state, write_state
from mlcycle.loop._retrain import cycle_run
from mlcycle.store import MetadataStore

NAME = "loop-stream-c0"


@pytest.fixture
def store(store_url: str) -> Iterator[MetadataStore]:
    s = MetadataStore(store_url)
    yield s
    s.close()


def _run(store: MetadataStore, name: str) -> str:
    return store.create_run(name=name, params={}, actor="tester").id


def test_a_resumed_state_finds_its_run_by_id_among_600_newer_runs(store: MetadataStore) -> None:
    ours = _run(store, NAME)
    state = LoopState(phase="retraining", data={"train_ref": "stream@2"}, run=ours)
    write_state(store, "stream", state, action="training", reason="test", actor="tester")
    # a busy project: hundreds of newer runs, one of them with the same name
    for i in range(600):
        _run(store, f"sweep-{i}")
    newer_namesake = _run(store, NAME)
    assert ours not in {r.id for r in store.list_runs(limit=500)}

    found = cycle_run(store, read_state(store, "stream"), NAME)

    assert found is not None and found.id == ours != newer_namesake
    assert found.status == "running"  # killed mid-training: the loop resumes it


def test_a_state_written_before_run_ids_were_recorded_falls_back_to_the_name(
    store: MetadataStore,
) -> None:
    _run(store, "other")
    ours = _run(store, NAME)
    old = {"phase": "retraining", "cycle": 0, "data": {"train_ref": "stream@2"}}  # no "run" key
    store.record_event("loop.data", "loop", "stream", actor="tester", details=old)

    state = read_state(store, "stream")
    found = cycle_run(store, state, NAME)

    assert state.run is None and found is not None and found.id == ours
    assert cycle_run(store, state, "loop-stream-c1") is None  # the next cycle has not started


def test_a_recorded_run_that_is_gone_means_training_starts_again(store: MetadataStore) -> None:
    state = LoopState(phase="retraining", run="0" * 32)
    assert cycle_run(store, state, NAME) is None
