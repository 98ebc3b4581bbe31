"""The conformance suite of executors (:class:`mlcycle.train.Executor`).

Subclass :class:`ExecutorConformance` and name the registered executor. The
suite runs a tiny training through it, resumes one, and checks that a
failing job fails the caller with the job's own error.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from mlcycle import Project
from mlcycle.errors import NotFoundError
from mlcycle.plugins import EXECUTORS
from mlcycle.spec import parse_spec
from mlcycle.train import Executor, TrainJob, resume, train

TINY = {"max_epochs": 2, "model": {"hidden": [8]}}


class ExecutorConformance:
    """What every executor must do: run the job it is given and return (or raise) its result."""

    name: ClassVar[str]

    @pytest.fixture
    def project(self, tmp_path: Path) -> Iterator[Project]:
        root = tmp_path / "p"
        Project.init(root, name="p").close()
        spec = {"train": {**TINY, "executor": self.name}}
        (root / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
        with Project.open(root) as project:
            yield project

    def make(self) -> Executor:
        return EXECUTORS.get(self.name)()

    def test_is_registered_and_chosen_by_the_spec(self) -> None:
        assert isinstance(self.make(), Executor)
        assert parse_spec({"train": {"executor": self.name}}).train.executor == self.name

    def test_runs_a_tiny_training(self, project: Project) -> None:
        job = TrainJob(data="sklearn:iris", name="tiny")
        assert pickle.loads(pickle.dumps(job)) == job  # a job can travel to another process
        outcome = self.make().run(project, job)
        run = project.runs.get(outcome.run_id)
        assert run.status == "finished" and run.name == "tiny"
        assert len(project.runs.metrics(run.id, "train_loss")) == TINY["max_epochs"]
        assert 0 <= outcome.test["accuracy"] <= 1

    def test_train_and_resume_go_through_it(self, project: Project) -> None:
        outcome = train(project, data="sklearn:iris")
        assert project.runs.get(outcome.run_id).status == "finished"
        with pytest.raises(NotFoundError):
            resume(project, "no-such-run")

    def test_a_failing_job_raises_its_own_error(self, project: Project) -> None:
        with pytest.raises(NotFoundError, match="nowhere"):
            self.make().run(project, TrainJob(data="nowhere"))
