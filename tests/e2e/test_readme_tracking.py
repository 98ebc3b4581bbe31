"""The README's "Tracking your own training code" example runs as written, in a fresh project."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from mlcycle import Project

README = Path(__file__).resolve().parents[2] / "README.md"
SRC = Path(__file__).resolve().parents[2] / "src"


def _example() -> str:
    text = README.read_text()
    section = text[text.index("## Tracking your own training code") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README's tracking section has no python block"
    return match.group(1)


def test_the_readme_tracking_example_runs_as_written(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    Project.init(root, name="proj").close()
    script = tmp_path / "example.py"
    script.write_text(_example())
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "my-mlp@1 True", done.stdout
    accuracy, parity = (float(v) for v in lines[1].split())
    assert accuracy > 0.9 and parity <= 1e-4
    assert set(lines[2].strip("[]").replace("'", "").split()) <= {"benign", "malignant"}
    with Project.open(root) as project:
        (run,) = project.runs.list()
        assert run.status == "finished" and run.params["epochs"] == 60
        assert len(project.runs.metrics(run.id, "val_accuracy")) == 60
        assert "model/my-mlp.safetensors" in run.artifacts
        assert run.summary["test"]["accuracy"] == accuracy  # the run has the version's metrics
        version = project.store.registry.get("my-mlp@challenger")
        assert version.run_id == run.id and version.lineage["imported"]["format"] == "torch"
