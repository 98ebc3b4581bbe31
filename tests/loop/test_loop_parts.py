"""The loop's parts on their own: rollout verdicts, triggers, retraining data, the state log."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlcycle import Project
from mlcycle.errors import ConflictError, DataError
from mlcycle.loop import (
    Traffic,
    hold_lease,
    judge_step,
    labelled_rows,
    live_figures,
    read_state,
    read_traffic,
    retraining_data,
    set_traffic,
    tick,
)
from mlcycle.predictions import LoggedBatch, PredictionLog
from mlcycle.registry import load, register
from mlcycle.spec import RolloutSpec
from mlcycle.train import train
from tests.loop._stream import FEATURES, make_project, rows


def _figures(**challenger: Any) -> dict[str, Any]:
    champion = {
        "requests": 200,
        "errors": 0,
        "error_rate": 0.0,
        "latency_p50_ms": 1.0,
        "latency_p95_ms": 2.0,
        "labelled": 100,
        "accuracy": 0.90,
    }
    return {"champion": champion, "challenger": {**champion, **challenger}, "agreement": None}


def test_rollout_steps_pass_wait_and_fail_for_the_right_reasons() -> None:
    spec = RolloutSpec(bake_s=10, min_requests=50, timeout_s=100)
    verdict, why = judge_step(_figures(), spec, elapsed_s=11)
    assert verdict == "pass" and "200 challenger requests" in why[0]
    verdict, why = judge_step(_figures(requests=10), spec, elapsed_s=11)
    assert verdict == "wait" and "10/50 requests" in why[0]
    verdict, why = judge_step(_figures(), spec, elapsed_s=3)
    assert verdict == "wait" and "3/10 s" in why[0]
    verdict, why = judge_step(_figures(requests=10), spec, elapsed_s=101)
    assert verdict == "fail" and "timed out" in why[0]
    verdict, why = judge_step(_figures(errors=5, error_rate=0.05), spec, elapsed_s=11)
    assert verdict == "fail" and "error rate 5.00%" in why[0]
    verdict, why = judge_step(_figures(latency_p50_ms=3.5), spec, elapsed_s=11)
    assert verdict == "fail" and "median latency 3.50 ms" in why[0]
    verdict, _ = judge_step(_figures(latency_p50_ms=2.9), spec, elapsed_s=11)
    assert verdict == "pass"  # 2.9 ms < 2 x 1.0 ms + 1 ms of slack
    verdict, why = judge_step(_figures(accuracy=0.85), spec, elapsed_s=11)
    assert verdict == "fail" and "live accuracy 0.850" in why[0]
    verdict, _ = judge_step(_figures(accuracy=0.85, labelled=10), spec, elapsed_s=11)
    assert verdict == "pass"  # too few labels to judge quality yet


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    loop = {"model": "stream", "min_labels": 100_000, "triggers": {"drift": False}}
    project = make_project(Path(tmp_path_factory.mktemp("parts")) / "p", loop)
    project.datasets.add(rows(1500, changed=False, seed=1), name="stream", target="y")
    register(project, train(project, data="stream").run_id, "stream", alias="champion")
    yield project
    project.close()


def _log(project: Project, frame: pd.DataFrame, *, labelled: bool = True) -> None:
    model = load("stream@champion", project=project)
    answer = model.predict(frame[FEATURES])
    ids = [uuid.uuid4().hex for _ in range(len(frame))]
    log = PredictionLog(project.root / ".mlcycle" / "log")
    for i, rid in enumerate(ids):
        log.append(
            LoggedBatch(
                "stream",
                1,
                "serve",
                [rid],
                {c: frame[c].to_numpy(np.float32)[i : i + 1] for c in FEATURES},
                0.5,
                labels=answer.labels[i : i + 1],
                probabilities=None
                if answer.probabilities is None
                else answer.probabilities[i : i + 1],
            )
        )
    if labelled:
        log.feedback(zip(ids, frame["y"], strict=True))
    log.close()


def _fresh(project: Project, version: Any, *, seed: int) -> Any:
    """120 labelled rows logged by this test alone (tests may run apart, in any order)."""
    start = datetime.now(UTC)
    _log(project, rows(120, changed=False, seed=seed))
    fresh = labelled_rows(project, version, since=start)
    assert fresh.num_rows == 120
    return fresh


def test_labelled_rows_join_the_late_labels_and_only_those(champion: Project) -> None:
    _log(champion, rows(120, changed=False, seed=5))
    _log(champion, rows(80, changed=False, seed=6), labelled=False)
    version = champion.store.registry.get("stream@champion")
    table = labelled_rows(champion, version)
    assert table.num_rows == 120
    assert set(table.column_names) == {*FEATURES, "y", "time"}
    expected = rows(120, changed=False, seed=5)
    got = table.to_pandas()
    assert np.allclose(got[FEATURES].to_numpy(), expected[FEATURES].to_numpy(), atol=1e-6)
    assert got["y"].tolist() == expected["y"].tolist()
    later = labelled_rows(champion, version, since=datetime.now(UTC) + timedelta(seconds=5))
    assert later.num_rows == 0


def test_new_labels_and_a_schedule_trigger_a_retraining(champion: Project) -> None:
    spec = champion.spec
    triggered = spec.loop.model_copy(
        update={"triggers": spec.loop.triggers.model_copy(update={"new_labels": 100})}
    )
    champion.spec = spec.model_copy(update={"loop": triggered})
    result = tick(champion)
    assert result.state.phase == "triggered"
    assert any("new labelled rows (trigger at 100)" in s for s in result.steps), result.steps
    assert any("waiting for labels" in s for s in result.steps)  # min_labels is out of reach
    events = champion.store.list_events(entity_type="loop", entity_id="stream", limit=5)
    assert events[0].action == "loop.triggered" and "new labelled rows" in (events[0].reason or "")


def test_retraining_data_modes_keep_the_holdout_apart(champion: Project) -> None:
    version = champion.store.registry.get("stream@champion")
    fresh = _fresh(champion, version, seed=7)
    window = retraining_data(champion, version, fresh, mode="window", holdout=0.25, seed=0)
    both = retraining_data(champion, version, fresh, mode="reference+window", holdout=0.25, seed=0)
    assert window.holdout_rows == 30 and window.holdout_ref == both.holdout_ref  # same cut
    trained = champion.datasets.load(window.train_ref)
    assert trained.num_rows == fresh.num_rows - 30
    assert champion.datasets.load(both.train_ref).num_rows == 1500 + fresh.num_rows - 30
    held = champion.datasets.load(window.holdout_ref).to_pandas()
    train_rows = {tuple(np.round(r, 5)) for r in trained.to_pandas()[FEATURES].to_numpy()}
    assert not any(tuple(np.round(r, 5)) in train_rows for r in held[FEATURES].to_numpy())
    again = retraining_data(champion, version, fresh, mode="window", holdout=0.25, seed=0)
    assert again.train_ref == window.train_ref  # content-addressed: a restart finds it again
    lineage = [
        e
        for e in champion.store.list_events(entity_type="dataset", limit=20)
        if e.action == "dataset.lineage" and e.entity_id == both.train_ref
    ]
    assert lineage and "stream@1 (1500 rows)" in lineage[0].details["parts"][0]
    with pytest.raises(DataError, match="at least 2"):
        retraining_data(champion, version, fresh.slice(0, 1), mode="window", holdout=0.3, seed=0)


def test_traffic_and_state_are_events_and_one_loop_holds_the_lease(
    champion: Project, tmp_path: Path
) -> None:
    assert read_traffic(champion.store, "nothing").mode == "off"
    set_traffic(champion.store, "stream", Traffic(2, "canary", 10.0), actor="t", reason="r")
    assert read_traffic(champion.store, "stream") == Traffic(2, "canary", 10.0)
    set_traffic(champion.store, "stream", Traffic(None, "off", 0.0), actor="t", reason="r")
    assert read_state(champion.store, "never-looped").phase == "idle"
    with (
        hold_lease(tmp_path, "stream"),
        pytest.raises(ConflictError, match="another mlcycle loop is running"),
        hold_lease(tmp_path, "stream"),
    ):
        pass
    with hold_lease(tmp_path, "stream"):  # released when the holder is done
        pass


@pytest.mark.postgres
def test_loops_on_two_machines_sharing_a_postgresql_store_exclude_each_other(
    pg_url: str, tmp_path: Path
) -> None:
    from mlcycle.store import MetadataStore

    one, two = MetadataStore(pg_url), MetadataStore(pg_url)
    try:
        with hold_lease(tmp_path / "a", "stream", one):  # different folders: other machines
            with (
                pytest.raises(ConflictError, match="on the PostgreSQL store"),
                hold_lease(tmp_path / "b", "stream", two),
            ):
                pass
            with hold_lease(tmp_path / "b", "other-model", two):
                pass
        with hold_lease(tmp_path / "b", "stream", two):  # released with the first
            pass
    finally:
        one.close()
        two.close()


def test_rollout_figures_count_requests_not_rows(champion: Project, tmp_path: Path) -> None:
    """19 requests of 10 rows are 19 requests (190 rows), one latency each."""
    log = PredictionLog(champion.root / ".mlcycle" / "log")
    started = datetime.now(UTC) - timedelta(seconds=1)
    # versions 8 and 9: no other test logs rows for them
    for version, requests, size, latency in ((8, 40, 1, 1.0), (9, 19, 10, 4.0)):
        for r in range(requests):
            rid = uuid.uuid4().hex
            ids = [rid] if size == 1 else [f"{rid}:{i}" for i in range(size)]
            log.append(
                LoggedBatch(
                    "stream",
                    version,
                    "serve",
                    ids,
                    {c: np.zeros(size, np.float32) for c in FEATURES},
                    latency + r * 0.001,
                    labels=np.array(["yes"] * size, dtype=object),
                )
            )
    log.close()
    figures = live_figures(champion, "stream", 8, 9, started, "canary")
    challenger = figures["challenger"]
    assert (challenger["requests"], challenger["rows"]) == (19, 190)
    assert challenger["latency_p50_ms"] == pytest.approx(4.009, abs=1e-3)  # per request
    assert (figures["champion"]["requests"], figures["champion"]["rows"]) == (40, 40)
    # 19 requests are too few for a latency verdict at min_requests=20, however many rows
    verdict, why = judge_step(figures, RolloutSpec(bake_s=0, min_requests=20), elapsed_s=5)
    assert verdict == "wait" and "19/20 requests" in why[0]


def test_auto_data_mode_follows_what_triggered(champion: Project) -> None:
    from mlcycle.loop._retrain import data_mode
    from mlcycle.loop._state import LoopState
    from mlcycle.loop._work import Work

    work = Work(champion, "stream")
    mode, why = data_mode(work, LoopState(kinds=["performance", "drift"]))
    assert mode == "window" and "change of concept" in why
    for kinds in (["drift"], ["improve"], ["new_labels"], ["schedule"]):
        assert data_mode(work, LoopState(kinds=kinds))[0] == "reference+window"


def test_held_out_rows_of_earlier_cycles_join_the_gate(champion: Project) -> None:
    version = champion.store.registry.get("stream@champion")
    fresh = _fresh(champion, version, seed=7)
    half = fresh.num_rows // 2  # each cycle's fresh rows come after the last retraining
    first = retraining_data(
        champion, version, fresh.slice(0, half), mode="window", holdout=0.25, seed=0
    )
    second = retraining_data(
        champion,
        version,
        fresh.slice(half),
        mode="reference+window",
        holdout=0.25,
        seed=1,
        earlier_holdout=first.holdout_ref,
    )
    pooled = champion.datasets.load(second.holdout_ref)
    assert (
        second.holdout_rows
        == pooled.num_rows
        == first.holdout_rows + round((fresh.num_rows - half) * 0.25)
    )
    trained = champion.datasets.load(second.train_ref).to_pandas()
    train_rows = {tuple(np.round(r, 5)) for r in trained[FEATURES].to_numpy()}
    earlier = champion.datasets.load(first.holdout_ref).to_pandas()[FEATURES].to_numpy()
    # the earlier cycle's held-out rows were never trained on
    assert not any(tuple(np.round(r, 5)) in train_rows for r in earlier)


def test_a_full_holdout_pool_renews_its_oldest_rows(champion: Project) -> None:
    """Past ``max_holdout_rows`` the oldest held-out rows go to training and fresh ones judge."""
    version = champion.store.registry.get("stream@champion")
    fresh = _fresh(champion, version, seed=7)
    half = fresh.num_rows * 2 // 3  # the first cycle holds out more than the second
    first = retraining_data(
        champion, version, fresh.slice(0, half), mode="window", holdout=0.25, seed=0
    )
    cap = first.holdout_rows  # the pool is full after the first cycle
    second = retraining_data(
        champion,
        version,
        fresh.slice(half),
        mode="reference+window",
        holdout=0.25,
        seed=1,
        earlier_holdout=first.holdout_ref,
        max_holdout_rows=cap,
    )
    new = round((fresh.num_rows - half) * 0.25)
    assert 0 < new < cap
    assert second.holdout_rows == cap  # the cap holds
    before = champion.datasets.load(first.holdout_ref).to_pandas()[FEATURES].to_numpy()
    pooled = champion.datasets.load(second.holdout_ref).to_pandas()[FEATURES].to_numpy()
    key = lambda rows: [tuple(np.round(r, 5)) for r in rows]  # noqa: E731
    # the oldest rows left the pool, the newest stayed, fresh rows came in
    assert key(pooled[: cap - new]) == key(before[new:])
    assert not set(key(pooled[cap - new :])) & set(key(before))
    trained = set(key(champion.datasets.load(second.train_ref).to_pandas()[FEATURES].to_numpy()))
    assert set(key(before[:new])) <= trained  # released rows train
    assert not set(key(pooled)) & trained  # nothing that judges trains
    assert any("released to make room" in p for p in second.parts)
