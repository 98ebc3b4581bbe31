"""The loop can retune: with ``loop.retrain.tune`` the challenger is the best trial of a study.

The retraining phase starts from the state the data phase leaves (fresh rows
versioned as ``stream@2``), so no serving or monitoring is needed: a study of
3 trials of at most 4 epochs on the loan stream. A real ``mlcycle loop``
process is SIGKILLed mid-study and the next loop continues that study.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcycle import Project
from mlcycle.loop import LoopState, history, read_state, write_state
from mlcycle.loop._retrain import retrain
from mlcycle.loop._work import Work
from mlcycle.registry import register
from mlcycle.train import train
from mlcycle.tune import STUDY_EXPERIMENT, study_run, trial_runs
from tests.loop._stream import make_project, rows

pytestmark = pytest.mark.slow

MLCYCLE = str(Path(sys.executable).with_name("mlcycle"))
# the cycle's study is named after the model and the cycle, so a restarted loop finds it
STUDY = "loop-stream-c0-tune"
LOOP = {"model": "stream", "data": "window", "retrain": {"tune": {"n_trials": 3}}}
# few epochs everywhere: the champion's 4 are what every trial starts from
FEW = {"train": {"max_epochs": 4}, "tune": {"max_epochs": 4}}


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    project = make_project(tmp_path / "p", LOOP, sections=FEW)
    project.datasets.add(rows(800, changed=False, seed=1), name="stream", target="y")
    # the champion differs from the spec in fields no study searches: its own are the base
    champion = train(project, data="stream", overrides={"grad_clip": 1.0, "seed": 7})
    register(project, champion.run_id, "stream", alias="champion")
    project.datasets.add(rows(600, changed=True, seed=2), name="stream", target="y")  # stream@2
    state = LoopState(phase="retraining", cycle=0, data={"train_ref": "stream@2"})
    write_state(project.store, "stream", state, action="data", reason="test", actor="test")
    yield project
    project.close()


def test_the_challenger_is_the_best_trial_of_the_cycles_study(project: Project) -> None:
    state = retrain(Work(project, "stream"), read_state(project.store, "stream"))

    assert state.phase == "gating" and state.study == STUDY
    parent = study_run(project, STUDY)
    assert parent.experiment == STUDY_EXPERIMENT and parent.status == "finished"
    assert parent.params["dataset"] == "stream@2"  # the fresh rows, not the champion's
    trials = trial_runs(project, parent.id)
    assert [int(r.tags["trial"]) for r in trials] == [0, 1, 2]
    # the challenger is the study's best trial: a child of the study run, evaluated on test
    best = parent.summary["best"]
    assert state.run == best["run_id"]
    run = project.runs.get(state.run)
    assert run.parent_run_id == parent.id and run.status == "finished" and "test" in run.summary
    version = project.store.registry.get("stream@challenger")
    assert version.run_id == best["run_id"] and version.version == state.challenger == 2
    # searched from the champion's parameters: what the space does not draw is the champion's
    assert (run.params["train"]["grad_clip"], run.params["train"]["seed"]) == (1.0, 7)

    retuned = next(e for e in history(project.store, "stream") if e.action == "loop.retuned")
    reason = retuned.reason or ""
    assert reason.startswith(f"study {STUDY}, 3 trials") and "best accuracy" in reason
    assert f"{best['values']['accuracy']:.4f}" in reason
    assert retuned.details["study"] == STUDY and retuned.details["run"] == best["run_id"]

    # killed after the study chose, before the gate: the next loop registers that choice
    again = retrain(Work(project, "stream"), LoopState.from_dict(retuned.details))
    assert (again.run, again.challenger) == (state.run, 2)
    assert len(trial_runs(project, parent.id)) == 3
    assert [v.version for v in project.store.registry.list_versions("stream")] == [1, 2]


def _trial_under_way(project: Project, number: int) -> bool:
    runs = project.store.list_runs(name=f"{STUDY}#{number}", limit=1)
    return bool(runs) and len(project.runs.metrics(runs[0].id, "train_loss")) >= 1


def test_a_loop_killed_mid_study_continues_the_same_study(project: Project) -> None:
    loop = subprocess.Popen(
        [MLCYCLE, "loop", "--once"],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )
    while not _trial_under_way(project, 1):  # pytest-timeout guards against a hang
        if loop.poll() is not None:
            pytest.fail(f"the loop exited ({loop.returncode}):\n{loop.communicate()[0].decode()}")
        time.sleep(0.05)
    loop.send_signal(signal.SIGKILL)
    loop.communicate(timeout=30)  # reaped: its pid is gone
    killed = read_state(project.store, "stream")
    assert (killed.phase, killed.study, killed.run) == ("retraining", STUDY, None)

    work = Work(project, "stream")
    state = retrain(work, killed)

    assert any(f"continued the interrupted study {STUDY}" in s for s in work.steps), work.steps
    studies = project.store.list_runs(experiment=STUDY_EXPERIMENT)
    assert [s.name for s in studies] == [STUDY]  # no second study
    trials = {int(r.tags["trial"]): r for r in trial_runs(project, studies[0].id)}
    # trial 1 died with its worker and was asked again as trial 2: 3 trials ended, 4 numbers
    assert sorted(trials) == [0, 1, 2, 3] and trials[1].status == "killed"
    assert trials[2].params["train"] == trials[1].params["train"]
    assert sum(r.status in ("finished", "pruned") for r in trials.values()) == 3
    assert state.study == STUDY and state.run == study_run(project, STUDY).summary["best"]["run_id"]
    assert project.store.registry.get("stream@challenger").run_id == state.run
