"""``mlcycle register --onnx FILE --data D@V``: a model trained elsewhere, from the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mlcycle
import mlcycle.cli
from mlcycle import Project
from mlcycle.cli._app import main, out


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(out, "width", 200)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    with Project.init(tmp_path / "proj", name="proj") as project:
        project.datasets.add("sklearn:iris")
    yield tmp_path / "proj"


def cli(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--project", str(root), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def iris_onnx(root: Path, path: Path) -> LogisticRegression:
    """A pipeline fitted on iris@1's training rows (a matrix), written as ONNX."""
    with Project.open(root) as project:
        schema = project.datasets.schema("iris@1")
        train = project.datasets.load_split("iris@1")["train"]
    columns = list(schema.features)
    x = np.column_stack([train.column(c).to_numpy() for c in columns]).astype(np.float32)
    y = train.column(str(schema.target)).to_numpy(zero_copy_only=False).astype(str)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    graph = convert_sklearn(
        model,
        initial_types=[("x", FloatTensorType([None, len(columns)]))],
        options={"zipmap": False},
    )
    path.write_bytes(graph.SerializeToString())
    return model


def test_an_onnx_file_registers_from_the_cli(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "iris.onnx"
    model = iris_onnx(root, path)
    code, said, err = cli(
        root, capsys, "register", "--onnx", str(path), "--data", "iris@1", "--name", "flowers",
        "--alias", "champion",
    )  # fmt: skip
    assert code == 0, err
    assert "registered flowers@1 @champion imported from" in said
    assert "feeds it the dataset's feature columns in schema order" in said
    assert "not checked against the model it came from" in said
    code, said, err = cli(root, capsys, "models", "show", "flowers@champion", "--json")
    shown = json.loads(said)
    assert shown["lineage"]["imported"]["format"] == "onnx"
    assert shown["lineage"]["imported"]["source"] == str(path)
    with Project.open(root) as project:
        test = project.datasets.load_split("iris@1")["test"]
        columns = list(project.datasets.schema("iris@1").features)
        served = mlcycle.load("flowers@champion", project=project).predict_proba(test)
    x = np.column_stack([test.column(c).to_numpy() for c in columns]).astype(np.float32)
    np.testing.assert_allclose(served, model.predict_proba(x), atol=1e-5)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--onnx", "{file}", "--name", "x"], "--onnx needs --data NAME@VERSION"),
        (["--data", "iris@1", "--name", "x"], "--data goes with --onnx FILE"),
        (["abc123", "--onnx", "{file}", "--data", "iris@1", "--name", "x"], "not both"),
        (["--onnx", "{file}", "--data", "iris@1"], "--name is required"),
        (["--name", "x"], "which model? give a RUN id, or --onnx FILE --data NAME@VERSION"),
        (["--onnx", "{file}", "--data", "iris@1", "--name", "x"], "{file}: not an ONNX model"),
        (["--onnx", "{missing}", "--data", "iris@1", "--name", "x"], "{missing}: no such file"),
    ],
)
def test_bad_input_is_one_line(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], said: str
) -> None:
    fake = tmp_path / "notes.onnx"
    fake.write_text("not a graph\n")
    paths = {"file": str(fake), "missing": str(tmp_path / "absent.onnx")}
    code, _, err = cli(root, capsys, "register", *[a.format(**paths) for a in args])
    assert code == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and said.format(**paths) in lines[0], err
