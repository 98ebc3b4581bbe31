"""Every registered model kind runs the conformance suite; a new one is one class."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from torch import nn

from mlcycle import Project
from mlcycle.errors import SpecError
from mlcycle.plugins import MODEL_KINDS
from mlcycle.spec import ModelSpec, parse_spec
from mlcycle.train import ModelKind, ModelParts, train
from mlcycle.train._models import Preprocess
from tests.conformance.model_kinds import ModelKindConformance


class TestMLP(ModelKindConformance):
    name = "mlp"


class TestCNN(ModelKindConformance):
    name = "cnn"
    image = True


class TestCustom(ModelKindConformance):
    name = "custom"

    def spec(self) -> ModelSpec:
        return ModelSpec(kind="custom", factory="tests.train.custom_models:tiny")


def test_every_built_in_runs_the_suite() -> None:
    covered = {cls.name for cls in ModelKindConformance.__subclasses__()}
    assert set(MODEL_KINDS.names()) <= covered


class Linear(ModelKind):
    """A toy model kind, as a user would write it in one file: a linear model."""

    def build(
        self, spec: ModelSpec, inputs: Preprocess, n_outputs: int, *, root: Path | None = None
    ) -> ModelParts:
        return ModelParts(nn.Linear(inputs.tabular_width + inputs.image_width, n_outputs))


@pytest.fixture
def linear() -> Iterator[type[Linear]]:
    MODEL_KINDS.register("linear")(Linear)
    yield Linear
    MODEL_KINDS.unregister("linear")


@pytest.mark.usefixtures("linear")
class TestLinear(ModelKindConformance):
    """A new model kind: its class and one registration line, and it passes the suite."""

    name = "linear"

    def test_the_spec_accepts_it_and_a_run_trains_it(self, tmp_path: Path) -> None:
        assert parse_spec({"train": {"model": {"kind": "linear"}}}).train.model.kind == "linear"
        with Project.init(tmp_path / "p", name="p") as project:
            outcome = train(
                project, data="sklearn:iris", model="linear", overrides={"max_epochs": 3}
            )
            run = project.runs.get(outcome.run_id)
        assert run.status == "finished" and run.tags["model"] == "linear"
        assert outcome.test["accuracy"] > 0


def test_an_unregistered_kind_is_refused_with_the_registered_names() -> None:
    with pytest.raises(SpecError, match=r"unknown model kind; registered: cnn, custom, mlp$"):
        parse_spec({"train": {"model": {"kind": "linear"}}})
