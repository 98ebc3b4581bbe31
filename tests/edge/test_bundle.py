"""write_bundle: the files, the manifest, the atomic write and its refusals."""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest

import mlcycle.edge
from mlcycle.edge import BundleInfo, _bundle, _ort_format, write_bundle
from mlcycle.errors import ConflictError, MlcycleError
from tests.edge.conftest import Model

BUNDLE_FILES = ["README.md", "manifest.json", "model.onnx", "predict.py", "signature.json"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write(dest: Path, model: Model, **kwargs: Any) -> BundleInfo:
    return write_bundle(
        dest,
        onnx_bytes=model.onnx_bytes,
        signature=model.signature,
        model_ref=f"{model.kind}@1",
        **kwargs,
    )


def test_public_surface() -> None:
    assert mlcycle.edge.__all__ == ["BundleInfo", "write_bundle"]
    code = (
        "import sys, mlcycle.edge; "
        "print(sorted(m for m in ('torch', 'onnxruntime', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_bundle_holds_its_files_and_a_manifest_of_them(
    bundles: dict[str, BundleInfo], models: dict[str, Model]
) -> None:
    info, model = bundles["iris"], models["iris"]
    assert sorted(p.name for p in info.path.iterdir()) == BUNDLE_FILES
    assert sorted(info.files) == BUNDLE_FILES
    for name, digest in info.files.items():
        assert _sha256(info.path / name) == digest
    assert info.size_bytes == sum((info.path / name).stat().st_size for name in BUNDLE_FILES)
    assert info.latency_ms > 0
    assert info.ort_file is None

    manifest = json.loads((info.path / "manifest.json").read_text())
    assert manifest["format"] == "mlcycle-edge/1"
    assert manifest["model"] == "iris@1"
    assert manifest["created_at"].endswith("+00:00")
    assert sorted(manifest["files"]) == [n for n in BUNDLE_FILES if n != "manifest.json"]
    for name, entry in manifest["files"].items():
        assert entry == {
            "sha256": _sha256(info.path / name),
            "size": (info.path / name).stat().st_size,
        }
    # opset 20 at IR version 10: ONNX Runtime 1.17 refuses IR 10, so 1.18 is the floor.
    assert manifest["requires"] == {"onnxruntime": ">=1.18", "numpy": ">=1.24"}
    assert manifest["task"] == "multiclass"
    assert [i["name"] for i in manifest["inputs"]] == [i["name"] for i in model.signature["inputs"]]
    assert manifest["inputs"][0] == {
        "name": "sepal_length_cm",
        "kind": "numeric",
        "dtype": "float32",
        "shape": [-1],
    }
    assert [o["name"] for o in manifest["outputs"]] == ["probabilities", "label"]

    assert (info.path / "model.onnx").read_bytes() == model.onnx_bytes
    assert json.loads((info.path / "signature.json").read_text()) == model.signature
    script = Path(_bundle.__file__).with_name("_predict_script.py").read_bytes()
    assert (info.path / "predict.py").read_bytes() == script


def test_the_readme_tells_the_device_what_it_needs(bundles: dict[str, BundleInfo]) -> None:
    readme = (bundles["mixed"].path / "README.md").read_text()
    assert 'pip install "onnxruntime>=1.18" "numpy>=1.24"' in readme
    assert "python predict.py rows.csv" in readme
    assert "| `city` | categorical | string | `lyon`, `nice`, `paris`; any other" in readme
    assert "| `member` | boolean | float32 | true / false (or 1 / 0) |" in readme
    assert "| `x` | numeric | float32 | " in readme
    assert "sha256" in readme and "exit code 2" in readme
    assert readme.endswith("## Model card\n\n### mixed\n\nTrained for the edge tests.\n")
    image = (bundles["digits"].path / "README.md").read_text()
    assert "| `image` | image | float32 [8, 8] | 0 to 16 in training | required |" in image
    regression = (bundles["diabetes"].path / "README.md").read_text()
    assert '{"value": ' in regression


def test_the_predict_script_needs_only_the_stdlib_numpy_and_onnxruntime() -> None:
    source = Path(_bundle.__file__).with_name("_predict_script.py").read_text()
    tree = ast.parse(source, feature_version=(3, 8))  # devices run old Pythons
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported - sys.stdlib_module_names == {"numpy", "onnxruntime"}
    assert ast.get_docstring(tree)


def test_an_empty_destination_folder_is_taken_over(
    models: dict[str, Model], tmp_path: Path
) -> None:
    dest = tmp_path / "bundle"
    dest.mkdir()
    info = _write(dest, models["iris"])
    assert sorted(p.name for p in dest.iterdir()) == BUNDLE_FILES
    assert info.path == dest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_a_destination_that_holds_anything_is_refused(
    models: dict[str, Model], tmp_path: Path
) -> None:
    dest = tmp_path / "bundle"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    with pytest.raises(ConflictError, match="not empty"):
        _write(dest, models["iris"])
    assert [p.name for p in dest.iterdir()] == ["notes.txt"]
    as_file = tmp_path / "file"
    as_file.write_text("x")
    with pytest.raises(ConflictError, match="not a folder"):
        _write(as_file, models["iris"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "file"]


def test_a_failure_midway_leaves_nothing_behind(
    models: dict[str, Model], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = _bundle._write

    def failing(folder: Path, name: str, content: bytes) -> None:
        if name == "README.md":
            raise OSError(28, "No space left on device")
        real(folder, name, content)

    monkeypatch.setattr(_bundle, "_write", failing)
    with pytest.raises(OSError, match="No space left"):
        _write(tmp_path / "out" / "bundle", models["iris"])
    assert list((tmp_path / "out").iterdir()) == []


def test_a_signature_that_does_not_fit_the_model_is_refused(
    models: dict[str, Model], tmp_path: Path
) -> None:
    model = models["iris"]
    signature = json.loads(json.dumps(model.signature))
    signature["inputs"][0]["name"] = "sepal_length_mm"
    with pytest.raises(ConflictError, match="sepal_length_mm"):
        write_bundle(
            tmp_path / "b", onnx_bytes=model.onnx_bytes, signature=signature, model_ref="iris@1"
        )
    with pytest.raises(MlcycleError, match="cannot load the model"):
        write_bundle(
            tmp_path / "b", onnx_bytes=b"not onnx", signature=model.signature, model_ref="x"
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("converter", "message"),
    [("onnxruntime.tools.no_such_converter", "not installed"), ("json.tool", "failed")],
)
def test_ort_format_without_a_working_converter_says_why(
    models: dict[str, Model],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    converter: str,
    message: str,
) -> None:
    monkeypatch.setattr(_ort_format, "CONVERTER", converter)
    with pytest.raises(MlcycleError, match=f"cannot write model.ort: .*{message}"):
        _write(tmp_path / "b", models["iris"], ort_format=True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["mixed", "digits"])
def test_ort_format_writes_a_model_ort_that_predicts_the_same(
    models: dict[str, Model], tmp_path: Path, kind: str
) -> None:
    pytest.importorskip("onnxruntime.tools.convert_onnx_models_to_ort")
    from mlcycle.registry._inputs import to_feeds

    model = models[kind]
    info = _write(tmp_path / "b", model, ort_format=True)
    assert info.ort_file == tmp_path / "b" / "model.ort"
    assert info.ort_file.is_file()
    manifest = json.loads((info.path / "manifest.json").read_text())
    assert manifest["files"]["model.ort"]["sha256"] == _sha256(info.ort_file)
    assert "ONNX Runtime Mobile" in (info.path / "README.md").read_text()

    feeds = to_feeds(model.records, model.signature)
    names = [o["name"] for o in model.signature["outputs"]]
    from_ort = ort.InferenceSession(str(info.ort_file), providers=["CPUExecutionProvider"])
    from_onnx = ort.InferenceSession(model.onnx_bytes, providers=["CPUExecutionProvider"])
    for got, expected in zip(from_ort.run(names, feeds), from_onnx.run(names, feeds), strict=True):
        if expected.dtype == object:
            assert got.tolist() == expected.tolist()
        else:
            assert got == pytest.approx(expected, abs=1e-5)
