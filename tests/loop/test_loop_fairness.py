"""A sensitive column through serving, monitoring, the loop's evaluation and its gate.

Applicants come with a ``group`` (a sensitive column: never a model input).
Before the change the approval rule ignores the group; after it, the rule
leans on ``x1``, which is higher in group ``b`` (a proxy). Served through a
real loopback server with the group in every record, the log keeps it, so
``monitor`` gives fairness over time; the loop's retraining datasets keep it,
so its evaluation has slices by group; and the gate's demographic-parity
guard sees that the challenger, better on accuracy, selects the two groups
far more unequally, and rejects it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcycle import Project
from mlcycle.demo import replaying
from mlcycle.loop import read_state, tick
from mlcycle.monitor import monitor
from mlcycle.predictions import INPUT_PREFIX, PredictionLog
from mlcycle.registry import load, register
from mlcycle.train import train
from tests.loop._stream import wait_logged

pytestmark = pytest.mark.slow

FEATURES = ["x1", "x2", "x3", "x4"]


def applicants(n: int, *, changed: bool, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b"], size=n)
    x = rng.normal(size=(n, 4))
    x[:, 0] += np.where(group == "b", 1.0, 0.0)  # x1 says something about the group
    score = x[:, 0] - x[:, 1] - 0.5 if changed else x[:, 1] + x[:, 2]
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["group"] = group
    frame["y"] = np.where(score + 0.2 * rng.normal(size=n) > 0, "yes", "no")
    return frame


def test_a_sensitive_column_flows_through_serving_monitoring_slices_and_the_gate(
    tmp_path: Path,
) -> None:
    root = tmp_path / "fair"
    Project.init(root, name="fair").close()
    spec = {
        "data": {"datasets": {"loans": {"target": "y", "roles": {"group": "sensitive"}}}},
        "train": {"max_epochs": 30, "model": {"hidden": [32]}, "lr": 0.01, "batch_size": 64},
        "evaluate": {"bootstrap": 100, "slices": ["group"]},
        "monitor": {"fairness": {"sensitive": ["group"], "positive_label": "yes"}},
        "loop": {
            "model": "loans",
            "min_labels": 900,
            "gate": {"guards": {"demographic_parity_difference": 0.05}},
            "rollout": {"bake_s": 0},
        },
    }
    (root / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    project = Project.open(root)
    project.datasets.add(applicants(2000, changed=False, seed=1), name="loans")
    register(project, train(project, data="loans").run_id, "loans", alias="champion")
    champion = load("loans@champion", project=project)
    assert "group" not in champion.input_names  # sensitive: never fed to the model
    assert {"name": "group", "role": "sensitive"} in champion.signature["context"]

    served = 0
    steps: list[str] = []
    with replaying(project.root, "loans@champion") as client:
        # the group rides along in every record: accepted, logged, not fed to the model
        for seed in (10, 11):
            client.replay(applicants(300, changed=False, seed=seed), [*FEATURES, "group"], "y")
            served += 300
        wait_logged(project, "loans", served)
        log = PredictionLog(project.root / ".mlcycle" / "log")
        table = log.read("loans")
        log.close()
        assert set(table.column(INPUT_PREFIX + "group").to_pylist()) == {"a", "b"}

        watched = monitor(project, "loans@champion", last=served)
        assert "group" in watched.fairness  # fairness over time, from served traffic
        assert watched.fairness["group"].demographic_parity_difference is not None
        steps += tick(project).steps  # a check without trigger: fresh rows start after it
        state = read_state(project.store, "loans")
        assert state.phase == "idle" and state.last_healthy is not None, steps

        for seed in range(20, 30):
            client.replay(applicants(300, changed=True, seed=seed), [*FEATURES, "group"], "y")
            served += 300
            wait_logged(project, "loans", served)
            steps += tick(project).steps
            if any(s.startswith(("rejected", "rollout_step", "promoted")) for s in steps):
                break
    text = "\n".join(steps)
    assert "triggered" in text and "retrained" in text, text

    # the challenger's run was evaluated by group: its dataset kept the sensitive column
    runs = project.store.list_runs(name="loop-loans-c0", limit=1)
    assert runs and set(runs[0].summary["slices"]["group"]) >= {"a", "b"}, runs

    # the gate: better on accuracy, far less equal between the groups -> rejected
    verdicts = [
        e
        for e in project.store.list_events(entity_type="model", entity_id="loans")
        if e.action.startswith("gate.")
    ]
    assert verdicts and verdicts[0].action == "gate.rejected", text
    verdict = verdicts[0].details
    assert verdict["delta"] > 0, text  # it did beat the champion on accuracy
    guard = verdict["guards"]["demographic_parity_difference"]
    assert guard["column"] == "group" and not guard["ok"] and guard["worsening"] > 0.05
    assert "guard demographic_parity_difference on 'group'" in (verdicts[0].reason or "")
    assert project.store.registry.get("loans@champion").version == 1
    project.close()
