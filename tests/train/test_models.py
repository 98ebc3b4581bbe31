"""The model zoo: preprocessing lives inside the network and is fitted on training rows."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from mlcycle.data import prepare
from mlcycle.errors import SpecError
from mlcycle.spec import DatasetSpec, ModelSpec
from mlcycle.train import build_model, encode, fit_layout


def _mixed() -> tuple[pa.Table, object]:
    rng = np.random.default_rng(0)
    n = 200
    income = rng.normal(50_000, 10_000, n)
    income[::10] = np.nan
    table = pa.table(
        {
            "income": income,
            "city": rng.choice(["paris", "lyon", "nice"], n),
            "member": rng.random(n) > 0.5,
            "label": rng.choice(["yes", "no"], n),
        }
    )
    prepared = prepare(table, DatasetSpec(target="label"), name="mixed")
    return prepared.table, prepared.schema


def test_preprocessing_is_fitted_on_training_rows_and_lives_in_the_model() -> None:
    table, schema = _mixed()
    train = table.slice(0, 150)
    layout = fit_layout(schema, train)
    assert layout.numeric == ("income", "member") and layout.categorical == ("city",)
    assert layout.vocabularies["city"] == ("lyon", "nice", "paris")
    expected_mean = np.nanmean(train.column("income").to_numpy(zero_copy_only=False))
    assert layout.numeric_mean[0] == pytest.approx(expected_mean)

    model = build_model(ModelSpec(), layout, "binary", 2)
    x = encode(table, layout)
    assert x.numeric is not None and x.categorical is not None
    assert np.isnan(x.numeric[0, 0])  # raw values go in; the model imputes
    features = model.preprocess.tabular(
        torch.from_numpy(x.numeric), torch.from_numpy(x.categorical), len(x)
    )
    # A missing income becomes the training mean, i.e. 0 after standardisation.
    assert features[0, 0].item() == pytest.approx(0.0, abs=1e-6)
    # One-hot of city: code 0 (missing/unseen) plus three known cities.
    assert features.shape == (200, 2 + 4)
    state = model.state_dict()
    assert {"preprocess.num_mean", "preprocess.num_std"} <= set(state)


def test_unseen_categories_get_the_unknown_code() -> None:
    table, schema = _mixed()
    layout = fit_layout(schema, table)
    other = table.set_column(1, "city", pa.array(["tokyo"] * table.num_rows))
    assert encode(other, layout).categorical is not None
    assert set(np.unique(encode(other, layout).categorical)) == {0}


def test_embeddings_and_onehot_give_different_widths() -> None:
    table, schema = _mixed()
    layout = fit_layout(schema, table)
    embedded = build_model(ModelSpec(categorical="embedding", embedding_dim=3), layout, "binary", 2)
    assert embedded.preprocess.tabular_width == 2 + 3


def test_cnn_needs_an_image_column() -> None:
    table, schema = _mixed()
    with pytest.raises(SpecError, match="'cnn' needs an image column"):
        build_model(ModelSpec(kind="cnn"), fit_layout(schema, table), "binary", 2)


def test_cnn_on_digits_takes_8x8_images() -> None:
    digits = prepare("sklearn:digits", DatasetSpec())
    layout = fit_layout(digits.schema, digits.table)
    assert layout.image_shape == (8, 8)
    model = build_model(ModelSpec(kind="cnn"), layout, "multiclass", 10)
    x = encode(digits.table.slice(0, 5), layout)
    assert x.image is not None
    assert model(image=torch.from_numpy(x.image)).shape == (5, 10)


def test_custom_factory_is_called_with_the_input_width() -> None:
    table, schema = _mixed()
    layout = fit_layout(schema, table)
    spec = ModelSpec(kind="custom", factory="tests.train.custom_models:tiny", options={"width": 5})
    model = build_model(spec, layout, "binary", 2)
    assert model.body[0].in_features == 6 and model.body[0].out_features == 5
    bad = ModelSpec(kind="custom", factory="tests.train.custom_models:not_a_module")
    with pytest.raises(SpecError, match=r"returned str, expected a torch.nn.Module"):
        build_model(bad, layout, "binary", 2)
    missing = ModelSpec(kind="custom", factory="tests.train.nowhere:f")
    with pytest.raises(SpecError, match="cannot be imported"):
        build_model(missing, layout, "binary", 2)


FACTORY = """
from torch import nn


def small(in_features, n_outputs, image_shape=None):
    return nn.Sequential(nn.Linear(in_features, 3), nn.Tanh(), nn.Linear(3, n_outputs))
"""


def test_a_factory_in_the_project_folder_is_found_without_pythonpath(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"team_models_{uuid.uuid4().hex[:8]}"  # imported nowhere else
    (tmp_path / f"{module}.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path.parent)  # the project folder is not the working directory
    monkeypatch.delitem(sys.modules, module, raising=False)
    table, schema = _mixed()
    layout = fit_layout(schema, table)
    spec = ModelSpec(kind="custom", factory=f"{module}:small")
    path = list(sys.path)
    with pytest.raises(SpecError, match=f"'{module}:small' cannot be imported: No module"):
        build_model(spec, layout, "binary", 2)
    model = build_model(spec, layout, "binary", 2, root=tmp_path)
    assert model.body[0].out_features == 3
    assert sys.path == path
    monkeypatch.delitem(sys.modules, module)
    with pytest.raises(SpecError, match=rf"cannot be imported \(looked in {tmp_path} too\)"):
        build_model(
            ModelSpec(kind="custom", factory=f"{module}:nope"), layout, "binary", 2, root=tmp_path
        )


@pytest.mark.parametrize("scheme", ["xavier", "kaiming", "normal"])
def test_weight_init_is_a_seeded_choice(scheme: str) -> None:
    table, schema = _mixed()
    layout = fit_layout(schema, table)

    def weights(init: str, seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return build_model(ModelSpec(init=init, init_std=0.5), layout, "binary", 2).body[0].weight

    assert torch.equal(weights(scheme, 1), weights(scheme, 1))
    assert not torch.equal(weights(scheme, 1), weights(scheme, 2))
    assert not torch.equal(weights(scheme, 1), weights("default", 1))
    if scheme == "normal":
        assert weights(scheme, 1).std().item() == pytest.approx(0.5, rel=0.2)
