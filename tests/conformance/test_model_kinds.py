"""Every registered model kind runs the conformance suite; a new one is one class."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from torch import nn

from mlcycle import Project
from mlcycle.errors import SpecError
from mlcycle.plugins import MODEL_KINDS
from mlcycle.spec import ModelSpec, TrainSpec, parse_spec
from mlcycle.train import ModelKind, ModelParts, TrainData, build_model, encode, train
from mlcycle.train._gbm import export_gbm_onnx, fit_gbm
from mlcycle.train._models import Preprocess
from tests.conformance.model_kinds import HEADS, ModelKindConformance, conformance_data


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


class TestLinear(ModelKindConformance):
    name = "linear"


class TestGBM(ModelKindConformance):
    """Boosted trees are not a network: the suite's three checks, each on LightGBM's terms."""

    name = "gbm"

    def spec(self) -> ModelSpec:
        return ModelSpec(kind="gbm", options={"n_estimators": 5, "min_child_samples": 2})

    def _fit(self, task: str, classes: tuple[str, ...], seed: int = 0) -> Any:
        table, layout = conformance_data(False)
        rng = np.random.default_rng(1)
        n = table.num_rows
        y = (
            rng.normal(size=n).astype(np.float32)
            if task == "regression"
            else rng.integers(0, len(classes), n)
        )
        x = encode(table, layout)
        data = TrainData(task, len(classes), x, y, x, y, classes)
        spec = TrainSpec(model=self.spec(), seed=seed)
        return fit_gbm(spec, layout, data).model, table

    def test_build_refuses_it(self) -> None:
        _, layout = conformance_data(False)
        with pytest.raises(SpecError, match="'gbm' is gradient-boosted trees, not a network"):
            build_model(self.spec(), layout, "binary", 2)

    @pytest.mark.parametrize(("task", "loss", "classes"), HEADS)
    def test_forward_gives_the_head_width(
        self, task: str, loss: str, classes: tuple[str, ...]
    ) -> None:
        model, table = self._fit(task, classes)
        out = model.predict_table(table)
        shape = (table.num_rows,) if task == "regression" else (table.num_rows, len(classes))
        assert out.shape == shape and np.isfinite(out).all()

    def test_the_same_seed_builds_the_same_weights(self) -> None:
        spec = self.spec().model_copy(
            update={"options": {"n_estimators": 5, "bagging_fraction": 0.5, "bagging_freq": 1}}
        )
        texts = []
        for _ in range(2):
            table, layout = conformance_data(False)
            x = encode(table, layout)
            y = np.arange(table.num_rows) % 3
            data = TrainData("multiclass", 3, x, y, x, y, ("a", "b", "c"))
            texts.append(fit_gbm(TrainSpec(model=spec, seed=7), layout, data).model.to_text())
        assert texts[0] == texts[1]

    def test_exports_to_onnx_that_agrees_with_torch(self) -> None:
        model, table = self._fit("multiclass", ("a", "b", "c"))
        session = ort.InferenceSession(export_gbm_onnx(model))
        feeds: dict[str, Any] = {
            "income": table.column("income").to_numpy(zero_copy_only=False).astype(np.float32),
            "city": np.array(table.column("city").to_pylist(), dtype=object),
        }
        probabilities = session.run(["probabilities"], feeds)[0]
        np.testing.assert_allclose(probabilities, model.predict_table(table), atol=1e-5)


class Bilinear(ModelKind):
    """A toy model kind, as a user would write it in one file: a bilinear model."""

    def build(
        self, spec: ModelSpec, inputs: Preprocess, n_outputs: int, *, root: Path | None = None
    ) -> ModelParts:
        width = inputs.tabular_width + inputs.image_width
        return ModelParts(Pairs(width, n_outputs))


class Pairs(nn.Module):
    def __init__(self, width: int, n_outputs: int) -> None:
        super().__init__()
        self.pairs = nn.Bilinear(width, width, n_outputs)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.pairs(x, x)


@pytest.fixture
def bilinear() -> Iterator[type[Bilinear]]:
    MODEL_KINDS.register("bilinear")(Bilinear)
    yield Bilinear
    MODEL_KINDS.unregister("bilinear")


@pytest.mark.usefixtures("bilinear")
class TestBilinear(ModelKindConformance):
    """A new model kind: its class and one registration line, and it passes the suite."""

    name = "bilinear"

    def test_the_spec_accepts_it_and_a_run_trains_it(self, tmp_path: Path) -> None:
        assert parse_spec({"train": {"model": {"kind": "bilinear"}}}).train.model.kind == "bilinear"
        with Project.init(tmp_path / "p", name="p") as project:
            outcome = train(
                project, data="sklearn:iris", model="bilinear", overrides={"max_epochs": 3}
            )
            run = project.runs.get(outcome.run_id)
        assert run.status == "finished" and run.tags["model"] == "bilinear"
        assert outcome.test["accuracy"] > 0


def test_an_unregistered_kind_is_refused_with_the_registered_names() -> None:
    with pytest.raises(
        SpecError, match=r"unknown model kind; registered: cnn, custom, gbm, linear, mlp$"
    ):
        parse_spec({"train": {"model": {"kind": "bilinear"}}})
