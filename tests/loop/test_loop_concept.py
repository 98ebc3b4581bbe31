"""The loop with its default settings on Agrawal's stream: a change of concept and a control.

The champion learns Agrawal's function 1 (group by age); at a known row the
stream switches to function 3 (age bands and education level) while the applicants keep
their distribution, so no input drifts and only the late labels tell. Served
one row per request through a real loopback server, labels posted after each
chunk, the loop ticking after each chunk, with every loop setting at its
default except the rollout's bake time (a wall-clock wait that paces
production traffic, not what this test is about). The loop must notice within
500 rows of the change, promote a challenger, and keep improving while labels
come in, to within 3 points of a model trained on the post-change rows alone
after at most 5,000 labelled post-change rows (traffic without labels after
them lets a rollout under way finish). The control stream never switches and
must never trigger.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcycle import Project
from mlcycle.demo import replaying
from mlcycle.loop import read_state, tick
from mlcycle.registry import load, register
from mlcycle.train import train
from tests.loop._agrawal import FEATURES, TARGET, agrawal, stream
from tests.loop._stream import wait_logged

pytestmark = pytest.mark.slow

CHANGE_AT = 1000  # rows before the switch
AFTER = 5000  # post-change rows the loop gets, at most
CHUNK = 200
TRAIN = {"max_epochs": 60, "model": {"hidden": [64, 32]}, "lr": 0.01, "batch_size": 64}
LOOP: dict[str, Any] = {"model": "agrawal", "rollout": {"bake_s": 0}}  # all else: defaults


def _project(root: Path) -> Project:
    Project.init(root, name="agrawal").close()
    spec = {"train": TRAIN, "evaluate": {"bootstrap": 200}, "loop": LOOP}
    (root / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    project = Project.open(root)
    project.datasets.add(agrawal(3000, function=1, seed=1), name="agrawal", target=TARGET)
    register(project, train(project, data="agrawal").run_id, "agrawal", alias="champion")
    return project


def _accuracy(project: Project, ref: str, frame: pd.DataFrame) -> float:
    labels = load(ref, project=project).predict(frame[FEATURES]).labels
    return float(np.mean(labels == frame[TARGET].to_numpy()))


def test_default_settings_recover_from_a_change_of_concept(tmp_path: Path) -> None:
    project = _project(tmp_path / "change")
    decisions: list[str] = []
    detected: int | None = None
    promoted: int | None = None
    post_change: list[pd.DataFrame] = []
    served = 0
    with replaying(project.root, "agrawal@champion") as client:
        client.per_request = 1  # online traffic: one applicant per request
        for start, frame in stream(
            CHANGE_AT + AFTER, CHUNK, change_at=CHANGE_AT, before=1, after=3, seed=10
        ):
            client.replay(frame, FEATURES, TARGET)
            served += len(frame)
            if start >= CHANGE_AT:
                post_change.append(frame)
            wait_logged(project, "agrawal", served)
            steps = tick(project).steps
            decisions += [f"[row {served}] {s}" for s in steps]
            if detected is None and any(s.startswith("triggered") for s in steps):
                detected = served
            champion = project.store.registry.get("agrawal@champion").version
            if promoted is None and champion != 1:
                promoted = served
        # A canary needs requests, not labels: traffic without labels lets a rollout under
        # way finish (nothing new is learnt from it: no label, no trigger).
        unlabelled = stream(3000, CHUNK, change_at=None, before=3, after=3, seed=11)
        for _, frame in unlabelled:
            if read_state(project.store, "agrawal").phase != "rollout":
                break
            client.replay(frame, FEATURES, TARGET, labelled=False)
            served += len(frame)
            wait_logged(project, "agrawal", served)
            decisions += [f"[row {served}, no labels] {s}" for s in tick(project).steps]
    text = "\n".join(decisions)
    print(text)  # the loop's story, shown when the test fails
    assert detected is not None and CHANGE_AT < detected <= CHANGE_AT + 500, text
    assert "performance drop" in text and "window: the champion's performance dropped" in text
    assert promoted is not None, text
    assert "keep improving" in text, text  # it went on after the first promotion

    # the post-change-only model: the same spec on every post-change row the loop got
    project.datasets.add(pd.concat(post_change), name="oracle", target=TARGET)
    oracle = register(project, train(project, data="oracle").run_id, "oracle")
    fresh = agrawal(4000, function=3, seed=777)
    final = _accuracy(project, "agrawal@champion", fresh)
    best = _accuracy(project, oracle.ref, fresh)
    old = _accuracy(project, "agrawal@1", fresh)
    print(
        f"detected after {detected - CHANGE_AT} rows, promoted after {promoted - CHANGE_AT}; "
        f"post-change accuracy: old {old:.3f}, loop {final:.3f}, post-change-only {best:.3f}"
    )
    assert old < best - 0.3, (old, best)  # the change really broke the old champion
    assert final >= best - 0.03, (final, best, text)
    assert project.store.registry.get("agrawal@champion").aliases == ("champion",)
    project.close()


def test_default_settings_never_trigger_on_a_stream_without_change(tmp_path: Path) -> None:
    project = _project(tmp_path / "control")
    decisions: list[str] = []
    served = 0
    with replaying(project.root, "agrawal@champion") as client:
        client.per_request = 1
        for _, frame in stream(3000, CHUNK, change_at=None, before=1, after=1, seed=20):
            client.replay(frame, FEATURES, TARGET)
            served += len(frame)
            wait_logged(project, "agrawal", served)
            decisions += tick(project).steps
    text = "\n".join(decisions)
    assert "triggered" not in text, text
    assert read_state(project.store, "agrawal").phase == "idle"
    assert [v.version for v in project.store.registry.list_versions("agrawal")] == [1]
    project.close()
