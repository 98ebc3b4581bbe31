"""The ``ray`` executor on a Ray started in this process: one task, DDP replicas, resume.

The multi-node case (two Ray nodes, PostgreSQL + S3, no shared folder) is
``tests/scale/test_ray_cluster.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

from mlcycle import Project
from mlcycle.errors import SpecError
from mlcycle.train import EpochProgress, load_model, resume, train
from mlcycle.train._run import train_here
from mlcycle.workflow import register
from tests.e2e.test_cli import mlcycle

# Five epochs of a small MLP on digits: a few seconds per training. Without dropout
# (replicas draw masks of their own) DDP replicas take one process's steps exactly.
SHORT = {
    "max_epochs": 5,
    "seed": 3,
    "model.hidden": [32],
    "model.dropout": 0.0,
    "checkpoint_interval_s": 0,
}


def _weights(project: Project, run_id: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_model(project, run_id)[0].state_dict().items() if v.numel()}


def _largest_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "p"
    Project.init(root, name="p").close()
    with Project.open(root) as opened:
        opened.datasets.add("sklearn:digits")
        yield opened


def test_local_training_and_serving_never_import_ray(tmp_path: Path) -> None:
    code = (
        "import json, sys, mlcycle, mlcycle.serve, mlcycle.batch\n"
        "from mlcycle.train import train\n"
        f"project = mlcycle.Project.init({str(tmp_path / 'p')!r}, name='p')\n"
        "train(project, data='sklearn:iris', overrides={'max_epochs': 1}, quiet=True)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_the_local_executor_refuses_several_workers(project: Project) -> None:
    with pytest.raises(SpecError, match=r"train.workers: 2 needs train.executor: ray"):
        train(project, data="digits", overrides={"workers": 2})


@pytest.mark.slow
def test_ddp_replicas_interrupted_resume_on_ray_as_one_process_trains(project: Project) -> None:
    """DDP replicas stopped mid-training continue on Ray and end as one process does.

    (One test for both: each Ray Train worker group costs ~10 s to start.)
    """

    def interrupt(report: object) -> None:
        if getattr(report, "epoch", 0) == 1:
            raise KeyboardInterrupt  # as a kill would stop it, after two epochs were stored

    with pytest.raises(KeyboardInterrupt):
        train_here(project, data="digits", overrides={**SHORT, "workers": 2}, on_epoch=interrupt)
    [killed] = [r for r in project.runs.list() if r.status == "killed"]
    assert [p.step for p in project.runs.metrics(killed.id, "train_loss")] == [0, 1]

    events: list[object] = []
    outcome = resume(project, killed.id, executor="ray", on_progress=events.append)
    run = project.runs.get(killed.id)
    assert outcome.run_id == killed.id and run.status == "finished"
    assert run.params["train"]["workers"] == 2
    assert [e.epoch for e in events if isinstance(e, EpochProgress)] == [3, 4, 5]  # relayed here
    assert [p.step for p in project.runs.metrics(run.id, "train_loss")] == [0, 1, 2, 3, 4]
    # Each replica takes half of every batch and DDP averages their gradients: the
    # steps are one process's, up to float rounding. Replica 0 alone, not averaged,
    # would end far away (it would have seen half the rows).
    alone = train(project, data="digits", overrides=SHORT, quiet=True)
    resumed, straight = _weights(project, run.id), _weights(project, alone.run_id)
    assert _largest_difference(resumed, straight) < 1e-4
    assert abs(outcome.test["accuracy"] - alone.test["accuracy"]) <= 0.005
    assert outcome.test["accuracy"] > 0.8
    assert outcome.report is not None and outcome.report.is_file()  # from the artifact store
    version = register(project, run.id, "digits-ddp")
    assert version.version == 1


@pytest.mark.slow
def test_cli_trains_with_executor_ray(project: Project) -> None:
    from mlcycle.train._ray import connect

    address = connect().get_runtime_context().gcs_address  # the CLI joins this process's Ray
    done = mlcycle(
        "train",
        "--data",
        "digits",
        "--set",
        "max_epochs=2",
        "--executor",
        "ray",
        "--json",
        cwd=project.root,
        env={"RAY_ADDRESS": address},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert project.runs.get(result["run_id"]).status == "finished"
    assert Path(result["report"]).is_file()
    wrong = mlcycle("train", "--executor", "dask", cwd=project.root)
    assert wrong.returncode == 1 and "unknown executor 'dask'" in wrong.stderr


def test_the_spec_chooses_ray(tmp_path: Path) -> None:
    root = tmp_path / "q"
    Project.init(root, name="q").close()
    (root / "mlcycle.yaml").write_text(yaml.safe_dump({"train": {"executor": "ray", "workers": 2}}))
    with Project.open(root) as opened:
        assert opened.spec.train.executor == "ray" and opened.spec.train.workers == 2
