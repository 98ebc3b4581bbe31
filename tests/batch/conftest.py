"""One project for every batch test, with three models registered once per session.

* ``cancer`` (binary, 30 numeric columns, sklearn breast cancer);
* ``diabetes`` (regression, 10 numeric columns);
* ``tiny`` (binary on a 4x4 image column: an input with no missing values allowed).

Inputs are the real rows of the datasets, with a ``patient_id`` column, the
target and an extra column the model does not take.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from mlcycle import Project
from mlcycle.registry import Predictor, load, register
from mlcycle.train import train

MLCYCLE = str(Path(sys.executable).with_name("mlcycle"))


@dataclass(frozen=True)
class Scoring:
    """The shared project and the models registered in it."""

    root: Path
    cancer: Predictor
    diabetes: Predictor
    tiny: Predictor


def _frame(data: Any, target: str) -> pd.DataFrame:
    frame: pd.DataFrame = data.frame.copy()
    frame.columns = [str(c).replace(" ", "_") for c in frame.columns]
    return frame.rename(columns={"target": target})


def cancer_rows() -> pd.DataFrame:
    """The 569 patients: an id, the 30 inputs, the known diagnosis and a free-text note."""
    frame = _frame(load_breast_cancer(as_frame=True), "target")
    frame.insert(0, "patient_id", [f"p{i:04d}" for i in range(len(frame))])
    frame["note"] = "seen"
    return frame


def diabetes_rows() -> pd.DataFrame:
    frame = _frame(load_diabetes(as_frame=True, scaled=True), "target")
    frame.insert(0, "visit_id", np.arange(len(frame), dtype=np.int64) * 10)
    return frame


def tiny_images(n: int, seed: int = 0) -> tuple[pa.FixedSizeListArray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.random((n, 4, 4)).astype(np.float32) * 16
    top = images[:, :2].sum(axis=(1, 2)) > images[:, 2:].sum(axis=(1, 2))
    return pa.FixedSizeListArray.from_arrays(pa.array(images.reshape(-1)), 16), top


@pytest.fixture(scope="session")
def scoring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scoring]:
    root = Path(tmp_path_factory.mktemp("batch")) / "proj"
    with Project.init(root, name="proj") as project:
        images, top = tiny_images(300)
        project.datasets.add(
            pa.table({"image": images, "y": np.where(top, "top", "bottom")}),
            name="tiny",
            target="y",
        )
        for name, data, epochs in [
            ("cancer", "sklearn:breast_cancer", 5),
            ("diabetes", "sklearn:diabetes", 5),
            ("tiny", "tiny", 1),
        ]:
            outcome = train(project, data=data, overrides={"max_epochs": epochs})
            register(project, outcome.run_id, name, alias="champion")
        yield Scoring(
            root,
            load("cancer@champion", project=project),
            load("diabetes@champion", project=project),
            load("tiny@champion", project=project),
        )


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``mlcycle ARGS`` as a real process."""
    return subprocess.run(
        [MLCYCLE, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "160", **(env or {})},
    )


def write_input(frame: pd.DataFrame, kind: str, folder: Path, name: str = "rows") -> Path:
    """``frame`` as a CSV file, a Parquet file or a folder of three Parquet files."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        path = folder / f"{name}.csv"
        frame.to_csv(path, index=False)
    elif kind == "parquet":
        path = folder / f"{name}.parquet"
        frame.to_parquet(path, index=False, row_group_size=100)
    else:
        path = folder / name
        path.mkdir()
        for i, part in enumerate(np.array_split(np.arange(len(frame)), 3)):
            frame.iloc[part].to_parquet(path / f"part-{i}.parquet", index=False)
    return path


def read_output(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    return pd.read_parquet(path)
