"""prepare(): from a source to everything a dataset version holds."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcycle.data import PreparedData, fingerprint, prepare
from mlcycle.spec import DatasetSpec, SplitSpec


def test_breast_cancer_end_to_end() -> None:
    data = prepare("sklearn:breast_cancer", DatasetSpec())
    assert isinstance(data, PreparedData)
    assert (data.name, data.source) == ("breast_cancer", "sklearn:breast_cancer")
    assert data.table.num_rows == 569
    assert data.schema.task == "binary"
    assert data.fingerprint == fingerprint(data.table)
    assert data.profile["split"] == {p: len(r) for p, r in data.split.items()}
    assert sum(data.profile["split"].values()) == 569
    json.dumps(data.profile, allow_nan=False)
    json.dumps(data.schema.to_dict())
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.name = "other"  # type: ignore[misc]


def test_digits_end_to_end() -> None:
    data = prepare("sklearn:digits", DatasetSpec(split=SplitSpec(test=0.2)))
    image = data.schema.column("image")
    assert (image.type, image.shape) == ("image", (8, 8))
    assert data.schema.task == "multiclass" and len(data.schema.classes or ()) == 10
    assert abs(len(data.split["test"]) - 1797 * 0.2) <= 2


def test_diabetes_end_to_end() -> None:
    data = prepare("sklearn:diabetes", DatasetSpec())
    assert data.schema.task == "regression"
    assert data.schema.features == ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")


def test_names_default_to_the_source_and_can_be_given(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(20.0), "y": ["a", "b"] * 10})
    frame.to_csv(tmp_path / "loans-2024.v1.csv", index=False)
    assert prepare(tmp_path / "loans-2024.v1.csv", DatasetSpec()).name == "loans-2024.v1"
    assert prepare(frame, DatasetSpec()).name == "frame"
    assert prepare(frame, DatasetSpec(), name="loans").name == "loans"


def test_source_from_spec_relative_to_base_dir(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    frame = pd.DataFrame({"x": np.arange(20.0), "label": ["a", "b"] * 10})
    frame.to_parquet(tmp_path / "data" / "train.parquet")
    data = prepare(None, DatasetSpec(source="data/train.parquet"), base_dir=tmp_path)
    assert data.name == "train"
    assert data.source == f"parquet:{(tmp_path / 'data' / 'train.parquet').resolve()}"
    assert data.schema.target == "label"


def test_spec_roles_and_types_reach_the_table() -> None:
    spec = DatasetSpec(
        target="target",
        roles={"mean_radius": "ignore", "mean_texture": "sensitive"},
        types={"mean_area": "categorical"},
    )
    data = prepare("sklearn:breast_cancer", spec)
    assert "mean_radius" not in data.schema.features
    assert data.schema.sensitive == ("mean_texture",)
    assert data.table.schema.field("mean_area").type == "string"
    assert len(data.schema.features) == 28
