"""How errors reach the user of the CLI: one ``error:`` line on stderr, exit code 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MLCYCLE = str(Path(sys.executable).with_name("mlcycle"))


def test_an_error_line_is_never_wrapped_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    missing = tmp_path / ("a-folder-with-a-long-name-" * 4) / "project"
    done = subprocess.run(
        [MLCYCLE, "--project", str(missing), "models", "list"],
        capture_output=True,  # stderr is a pipe: Rich would wrap at 80 columns
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and len(lines[0]) > 160, done.stderr
    assert lines[0].startswith("error: no mlcycle.yaml in ") and str(missing) in lines[0]
    assert lines[0].endswith("or pass --project DIR")
