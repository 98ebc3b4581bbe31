"""A bundle runs on a bare device: a fresh virtualenv with only onnxruntime and numpy.

This installs from the package index pip is configured with, so it is slow
(seconds from a local mirror, minutes from the internet).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlcycle.edge import BundleInfo
from tests.edge.conftest import KINDS, Model, assert_same, reference, run_predict, write_csv

pytestmark = pytest.mark.slow


def _device_env() -> dict[str, str]:
    """The environment of a plain shell: nothing that would reach this checkout or its venv."""
    hidden = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONUSERBASE"}
    return {k: v for k, v in os.environ.items() if k not in hidden}


@pytest.fixture(scope="module")
def device_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    venv = tmp_path_factory.mktemp("device") / "venv"
    env = _device_env()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env, timeout=300)
    python = str(venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "onnxruntime", "numpy"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert install.returncode == 0, f"pip install onnxruntime numpy failed:\n{install.stderr}"
    return python


def test_the_device_venv_has_neither_torch_nor_mlcycle_nor_pandas(
    device_python: str, tmp_path: Path
) -> None:
    for module in ("torch", "mlcycle", "pandas"):
        done = subprocess.run(
            [device_python, "-c", f"import {module}"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=_device_env(),
        )
        assert done.returncode != 0, f"{module} is importable in the device venv"
        assert "ModuleNotFoundError" in done.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_predict_py_on_the_device_gives_mlcycles_answers(
    device_python: str,
    bundles: dict[str, BundleInfo],
    models: dict[str, Model],
    tmp_path: Path,
    kind: str,
) -> None:
    model = models[kind]
    rows = write_csv(tmp_path / "rows.csv", model.records)
    done = run_predict(bundles[kind].path, str(rows), python=device_python, env=_device_env())
    assert done.returncode == 0, done.stderr
    assert_same(done.stdout, reference(model))
