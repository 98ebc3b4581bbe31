"""The registry stores a version from bytes and metadata: no training run, no stage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

import mlcycle
from mlcycle import DataError, Project
from mlcycle.registry._add import VersionDraft, add_version
from mlcycle.registry._signature import FORMAT


def _doubling_graph() -> bytes:
    """``value = 2 * x``: a graph made by hand, as an imported model's would be."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["value"])],
        "double",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch"])],
        [helper.make_tensor_value_info("value", TensorProto.FLOAT, ["batch"])],
        initializer=[helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=9)
    onnx.checker.check_model(model)
    return model.SerializeToString()


SIGNATURE = {
    "format": FORMAT,
    "task": "regression",
    "target": "y",
    "classes": None,
    "inputs": [{"name": "x", "kind": "numeric", "dtype": "float32", "shape": [-1]}],
    "outputs": [{"name": "value", "dtype": "float32", "shape": [-1]}],
    "context": [],
}


def _draft(**changes: object) -> VersionDraft:
    fields: dict[str, object] = {
        "task": "regression",
        "onnx": _doubling_graph(),
        "signature": SIGNATURE,
        "metrics": {"test": {"rmse": 0.0}},
        "lineage": {"source": "made by hand"},
        "dataset": {"ref": "none", "rows": 0},
    }
    return VersionDraft(**{**fields, **changes})  # type: ignore[arg-type]


def test_a_version_from_bytes_loads_and_predicts(tmp_path: Path) -> None:
    with Project.init(tmp_path / "proj", name="proj") as project:
        version = add_version(project, "double", _draft(), actor="test", alias="champion")
        assert version.ref == "double@1" and version.run_id is None
        assert sorted(version.files) == [
            "card.html",
            "card.md",
            "lineage.json",
            "metrics.json",
            "model.onnx",
            "signature.json",
        ]
        card = project.artifacts.read_bytes(version.files["card.md"]).decode()
        assert card.startswith("# Model card: double\n")
    model = mlcycle.load("double@champion", project=tmp_path / "proj")
    assert model.predict([{"x": 1.5}, {"x": -2.0}]).values.tolist() == [3.0, -4.0]


@pytest.mark.parametrize(
    "files", [{"model.onnx": b"x"}, {"card.md": b"x"}, {"notes.txt": b"x"}], ids=str
)
def test_files_the_registry_writes_itself_or_does_not_know_are_refused(
    tmp_path: Path, files: dict[str, bytes]
) -> None:
    with Project.init(tmp_path / "proj", name="proj") as project:
        with pytest.raises(DataError, match=r"each at most once, and none of model\.onnx"):
            add_version(project, "double", _draft(files=files), actor="test")
        assert project.store.registry.list_models() == []


def test_the_old_names_still_resolve_without_the_registry_importing_them() -> None:
    code = (
        "import sys, mlcycle.registry as r\n"
        "print('mlcycle.workflow' in sys.modules, 'mlcycle.train' in sys.modules)\n"
        "import mlcycle.workflow, mlcycle.train\n"
        "print(r.register is mlcycle.workflow.register, r.check_parity is mlcycle.train.check_parity)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "True", "True"]
