"""The bundle's predict.py, run in its own process: same answers as mlcycle, clear refusals."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlcycle.edge import BundleInfo
from tests._imports import HEAVY, heavy_modules
from tests.edge.conftest import (
    KINDS,
    Model,
    assert_same,
    reference,
    run_predict,
    write_csv,
    write_json,
)


@pytest.mark.parametrize("kind", KINDS)
def test_csv_and_json_rows_predict_as_mlcycle_does(
    bundles: dict[str, BundleInfo], models: dict[str, Model], tmp_path: Path, kind: str
) -> None:
    model, bundle = models[kind], bundles[kind].path
    expected = reference(model)
    csv_file = write_csv(tmp_path / "rows.csv", model.records)
    json_file = write_json(tmp_path / "rows.json", model.records)
    for source in (csv_file, json_file):
        done = run_predict(bundle, str(source))
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        assert_same(done.stdout, expected)


def test_images_in_csv_may_be_space_separated(
    bundles: dict[str, BundleInfo], models: dict[str, Model], tmp_path: Path
) -> None:
    model = models["digits"]
    rows = write_csv(tmp_path / "rows.csv", model.records, image_style="spaces")
    done = run_predict(bundles["digits"].path, str(rows))
    assert done.returncode == 0, done.stderr
    assert_same(done.stdout, reference(model))


def test_rows_on_stdin_as_csv_or_wrapped_json(
    bundles: dict[str, BundleInfo], models: dict[str, Model], tmp_path: Path
) -> None:
    model = models["mixed"]
    text = write_csv(tmp_path / "rows.csv", model.records).read_text()
    done = run_predict(bundles["mixed"].path, "-", stdin=text)
    assert done.returncode == 0, done.stderr
    assert_same(done.stdout, reference(model))
    wrapped = write_json(tmp_path / "rows.json", model.records, wrapped=True).read_text()
    done = run_predict(bundles["mixed"].path, "-", "--batch-size", "5", stdin=wrapped)
    assert done.returncode == 0, done.stderr
    assert_same(done.stdout, reference(model))


def test_the_target_column_may_ride_along(
    bundles: dict[str, BundleInfo], models: dict[str, Model], tmp_path: Path
) -> None:
    model = models["iris"]
    labelled = [{**r, "target": "setosa"} for r in model.records]
    done = run_predict(bundles["iris"].path, str(write_csv(tmp_path / "rows.csv", labelled)))
    assert done.returncode == 0, done.stderr
    assert_same(done.stdout, reference(model))


def test_it_imports_neither_mlcycle_nor_the_training_or_monitoring_stack(
    bundles: dict[str, BundleInfo], models: dict[str, Model], tmp_path: Path
) -> None:
    rows = write_json(tmp_path / "rows.json", models["iris"].records)
    script = bundles["iris"].path / "predict.py"
    code = (
        "import runpy, sys\n"
        f"sys.argv = [{str(script)!r}, {str(rows)!r}]\n"
        "try:\n"
        "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", "import json\n" + code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    modules = json.loads(done.stdout.strip().splitlines()[-1])
    assert "onnxruntime" in modules  # it did predict
    assert heavy_modules(modules, (*HEAVY, "mlcycle")) == []


def test_help(bundles: dict[str, BundleInfo]) -> None:
    done = run_predict(bundles["iris"].path, "--help")
    assert done.returncode == 0
    assert "--batch-size" in done.stdout and "Exit codes" in done.stdout


@pytest.fixture
def iris_copy(bundles: dict[str, BundleInfo], tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundles["iris"].path, tmp_path / "bundle"))


@pytest.mark.parametrize("victim", ["model.onnx", "signature.json", "predict.py", "README.md"])
def test_an_altered_file_stops_it_with_exit_code_2(
    iris_copy: Path, models: dict[str, Model], tmp_path: Path, victim: str
) -> None:
    path = iris_copy / victim
    if victim == "model.onnx":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    else:
        path.write_text(path.read_text() + "\n# edited\n")
    done = run_predict(iris_copy, str(write_json(tmp_path / "rows.json", models["iris"].records)))
    assert done.returncode == 2
    assert done.stdout == ""
    assert f"{victim} does not match manifest.json" in done.stderr


def test_a_missing_file_stops_it_with_exit_code_2(
    iris_copy: Path, models: dict[str, Model], tmp_path: Path
) -> None:
    (iris_copy / "signature.json").unlink()
    done = run_predict(iris_copy, str(write_json(tmp_path / "rows.json", models["iris"].records)))
    assert done.returncode == 2
    assert "signature.json is missing" in done.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("petal_width_cm"), "missing input column 'petal_width_cm'"),
        (lambda r: r.update(colour="red"), "unexpected column 'colour'"),
        (lambda r: r.update(sepal_width_cm="wide"), "column 'sepal_width_cm', row 3: 'wide'"),
    ],
    ids=["missing", "unexpected", "bad-number"],
)
def test_unusable_rows_stop_it_with_exit_code_1_naming_the_column(
    bundles: dict[str, BundleInfo],
    models: dict[str, Model],
    tmp_path: Path,
    change: Callable[[dict[str, Any]], object],
    message: str,
) -> None:
    records = [dict(r) for r in models["iris"].records]
    for record in records[2:3] if "row 3" in message else records:
        change(record)
    for rows in (
        write_csv(tmp_path / "rows.csv", records),
        write_json(tmp_path / "rows.json", records),
    ):
        done = run_predict(bundles["iris"].path, str(rows))
        assert done.returncode == 1, done.stderr
        assert done.stdout == ""
        assert message in done.stderr


def test_booleans_images_and_input_files_are_checked(
    bundles: dict[str, BundleInfo], models: dict[str, Model], tmp_path: Path
) -> None:
    records = [dict(r) for r in models["mixed"].records]
    records[1]["member"] = "maybe"
    done = run_predict(bundles["mixed"].path, str(write_json(tmp_path / "m.json", records)))
    assert done.returncode == 1
    assert "column 'member', row 2: 'maybe' is not a boolean" in done.stderr

    images = [dict(r) for r in models["digits"].records]
    images[0]["image"] = [1.0, 2.0, 3.0]
    done = run_predict(bundles["digits"].path, str(write_json(tmp_path / "d.json", images)))
    assert done.returncode == 1
    assert "column 'image', row 1: 3 values, expected 64" in done.stderr

    done = run_predict(bundles["iris"].path, str(tmp_path / "absent.csv"))
    assert done.returncode == 1
    assert "cannot read" in done.stderr and "absent.csv" in done.stderr
    (tmp_path / "broken.json").write_text("[{")
    done = run_predict(bundles["iris"].path, str(tmp_path / "broken.json"))
    assert done.returncode == 1
    assert "is not valid JSON" in done.stderr
