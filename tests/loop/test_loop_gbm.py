"""The loop retrains a gbm champion as a gbm, with the champion's options, and registers it.

The retraining phase starts from the state the data phase leaves (fresh rows
versioned as ``stream@2``), as in ``test_loop_retune.py``: no serving needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlcycle.loop import LoopState, read_state, write_state
from mlcycle.loop._retrain import retrain
from mlcycle.loop._work import Work
from mlcycle.registry import load, register
from mlcycle.train import train
from tests.loop._stream import FEATURES, make_project, rows

OPTIONS = {"num_leaves": 15, "learning_rate": 0.1}


def test_a_gbm_champion_is_retrained_as_gbm_and_registered_as_challenger(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"model": "stream", "data": "window"})
    try:
        project.datasets.add(rows(800, changed=False, seed=1), name="stream", target="y")
        champion = train(
            project,
            data="stream",
            model="gbm",
            overrides={"model.options": OPTIONS, "seed": 7, "evaluate.bootstrap": 0},
        )
        register(project, champion.run_id, "stream", alias="champion")
        project.datasets.add(rows(600, changed=True, seed=2), name="stream", target="y")
        state = LoopState(phase="retraining", cycle=0, data={"train_ref": "stream@2"})
        write_state(project.store, "stream", state, action="data", reason="test", actor="test")

        state = retrain(Work(project, "stream"), read_state(project.store, "stream"))

        assert state.phase == "gating" and state.challenger == 2
        run = project.runs.get(state.run or "")
        assert run.params["dataset"] == "stream@2" and run.status == "finished"
        trained = run.params["train"]
        assert trained["model"]["kind"] == "gbm" and trained["seed"] == 7
        assert {k: trained["model"]["options"][k] for k in OPTIONS} == OPTIONS
        version = project.store.registry.get("stream@challenger")
        assert version.version == 2 and "lightgbm.txt" in version.files
        assert version.metrics["parity"]["max_abs_diff"] <= 1e-5
        fresh = rows(200, changed=True, seed=3)
        labels = load("stream@challenger", project=project).predict(fresh[FEATURES]).labels
        assert float(np.mean(labels == fresh["y"].to_numpy())) > 0.6
    finally:
        project.close()
