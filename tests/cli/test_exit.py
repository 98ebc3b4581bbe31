"""How the ``mlcycle`` script leaves: its answer and exit code, never a native library's teardown.

Under load, the native thread pools that torch, ONNX Runtime and Arrow leave
behind can abort the process while C++ destructors run at exit
("terminate called without an active exception", exit -6) after the
command has finished and printed its answer. A C-level exit handler that
aborts stands in for such a library here: the script must still exit with
its own code, its output flushed and Python's exit handlers run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ABORTING = (
    "import atexit, ctypes, sys\n"
    "libc = ctypes.CDLL('libc.so.6')\n"
    "abort = ctypes.cast(libc.abort, ctypes.c_void_p)\n"
    "libc.__cxa_atexit(abort, None, None)  # as a C++ static destructor that aborts\n"
    "atexit.register(lambda: print('python exit handler ran', file=sys.stderr))\n"
    "from mlcycle.cli import main\n"
    "sys.argv = ['mlcycle', *sys.argv[1:]]\n"
    "main()\n"
)


def _script(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", ABORTING, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "code"),
    [(("--version",), 0), (("runs", "list"), 1)],  # the second: no project here
)
def test_the_exit_code_and_output_survive_a_native_teardown_that_aborts(
    args: tuple[str, ...], code: int, tmp_path: Path
) -> None:
    done = _script(*args, cwd=tmp_path)
    assert done.returncode == code, done.stderr
    assert "python exit handler ran" in done.stderr
    if code == 0:
        assert done.stdout.startswith("mlcycle 0.")  # written to a pipe, flushed before leaving
    else:
        assert done.stderr.startswith("error: no mlcycle.yaml in ")
