"""The conformance suite of model kinds (:class:`mlcycle.train.ModelKind`).

Subclass :class:`ModelKindConformance` and name the registered kind; set
``image = True`` for a kind that needs an image column and override
:meth:`spec` when the kind needs fields (a factory, options).
"""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pytest
import torch

from mlcycle.data import prepare
from mlcycle.plugins import MODEL_KINDS
from mlcycle.spec import DatasetSpec, ModelSpec, TrainSpec
from mlcycle.train import (
    Encoded,
    FeatureLayout,
    ModelKind,
    build_model,
    encode,
    export_onnx,
    fit_layout,
    head_width,
)

HEADS = [  # (task, loss, classes): every head the losses ask for
    ("binary", "auto", ("no", "yes")),
    ("binary", "bce", ("no", "yes")),
    ("multiclass", "auto", ("a", "b", "c")),
    ("regression", "auto", ()),
]


@cache
def conformance_data(image: bool) -> tuple[pa.Table, FeatureLayout]:
    """Mixed tabular columns with missing values, or 8x8 digits (an image column)."""
    if image:
        prepared = prepare("sklearn:digits", DatasetSpec())
        table = prepared.table.slice(0, 64)
    else:
        rng = np.random.default_rng(0)
        n = 64
        income = rng.normal(50.0, 10.0, n)
        income[::9] = np.nan
        columns = {
            "income": income,
            "city": rng.choice(["paris", "lyon", "nice"], n),
            "y": rng.choice(["a", "b"], n),
        }
        prepared = prepare(pa.table(columns), DatasetSpec(target="y"), name="mixed")
        table = prepared.table
    return table, fit_layout(prepared.schema, table)


def _inputs(x: Encoded) -> dict[str, torch.Tensor]:
    parts = {"numeric": x.numeric, "categorical": x.categorical, "image": x.image}
    return {k: torch.from_numpy(v) for k, v in parts.items() if v is not None}


class ModelKindConformance:
    """What every model kind must do: build, give the head's width, export to ONNX."""

    name: ClassVar[str]
    image: ClassVar[bool] = False

    def spec(self) -> ModelSpec:
        return ModelSpec(kind=self.name, hidden=(8,), channels=(4,))

    def test_is_registered_and_named_by_the_spec(self) -> None:
        assert self.name in MODEL_KINDS.names()
        assert isinstance(MODEL_KINDS.get(self.name)(), ModelKind)
        assert self.spec().kind == self.name

    @pytest.mark.parametrize(("task", "loss", "classes"), HEADS)
    def test_forward_gives_the_head_width(
        self, task: str, loss: str, classes: tuple[str, ...]
    ) -> None:
        table, layout = conformance_data(self.image)
        width = head_width(TrainSpec(loss=loss), task, len(classes))  # type: ignore[arg-type]
        model = build_model(self.spec(), layout, task, width)
        model.eval()
        x = encode(table, layout)
        with torch.no_grad():
            raw = model(**_inputs(x))
        assert raw.shape == (table.num_rows, width)
        assert torch.isfinite(raw).all()

    def test_the_same_seed_builds_the_same_weights(self) -> None:
        _, layout = conformance_data(self.image)
        states = []
        for _ in range(2):
            torch.manual_seed(7)
            states.append(build_model(self.spec(), layout, "multiclass", 3).state_dict())
        assert states[0].keys() == states[1].keys()
        assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])

    def test_exports_to_onnx_that_agrees_with_torch(self) -> None:
        table, layout = conformance_data(self.image)
        model = build_model(self.spec(), layout, "multiclass", 3)
        model.eval()
        session = ort.InferenceSession(export_onnx(model, layout, ["a", "b", "c"], "multiclass"))
        feeds: dict[str, Any] = {}
        for column in layout.numeric:
            feeds[column] = table.column(column).to_numpy(zero_copy_only=False).astype(np.float32)
        for column in layout.categorical:
            values = table.column(column).to_pylist()
            feeds[column] = np.array(["" if v is None else v for v in values], dtype=object)
        if layout.image is not None:
            assert layout.image_shape is not None
            flat = table.column(layout.image).combine_chunks().flatten().to_numpy()
            feeds[layout.image] = flat.astype(np.float32).reshape(-1, *layout.image_shape)
        probabilities = session.run(["probabilities"], feeds)[0]
        x = encode(table, layout)
        with torch.no_grad():
            raw = model(**_inputs(x))
            expected = model.outputs(raw).numpy()
        np.testing.assert_allclose(probabilities, expected, atol=1e-5)
