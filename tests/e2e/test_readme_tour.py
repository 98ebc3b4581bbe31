"""The README's tour runs as written, in order, in an empty folder.

The bash block under "A short tour" is run line by line in one shell (so
``cd`` and ``$RUN`` carry over), with the virtual environment's ``bin`` first
on PATH and the example port swapped for a free one. Every command must
succeed; ``mlcycle monitor`` and ``mlcycle gate`` may also answer 3, their
documented verdict (drift or an alert; the challenger is not promoted). Then
the Python block runs in the project folder the tour made.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
VERDICTS = ("mlcycle monitor", "mlcycle gate")  # exit 3 is an answer, not a failure


def _block(language: str) -> str:
    text = README.read_text()
    tour = text[text.index("## A short tour") :]
    match = re.search(rf"```{language}\n(.*?)```", tour, re.S)
    assert match, f"README's tour has no {language} block"
    return match.group(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_shell(script: str, cwd: Path, env: dict[str, str], limit: float) -> tuple[str, bool]:
    """Run ``script`` in its own process group; its output, and whether it ended in time.

    Output goes to files, not pipes: a process the tour left behind (a server's
    worker) cannot keep the test waiting for end-of-file. Whatever is left in
    the group when the script ends (or runs out of time) is killed.
    """
    out = cwd / "tour.out"
    with out.open("wb") as sink:
        shell = subprocess.Popen(
            ["bash", "-c", script],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            shell.wait(timeout=limit)
            ended = True
        except subprocess.TimeoutExpired:
            ended = False
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(shell.pid, signal.SIGKILL)
            shell.wait()
    return out.read_text(errors="replace"), ended


def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    commands = [
        line for line in _block("bash").splitlines() if line.strip() and not line.startswith("#")
    ]
    port = str(_free_port())
    codes = tmp_path / "codes.log"
    script = ["set +e"]
    for i, line in enumerate(commands):
        script += [
            f'echo "start {i}" >> {codes}',
            line.replace("8080", port),
            f'echo "{i} $?" >> {codes}',
        ]
    script += [f'echo "start end" >> {codes}', "kill %1 2>/dev/null; wait"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["COLUMNS"] = "200"
    output, ended = _run_shell("\n".join(script), tmp_path, env, limit=900)
    log = codes.read_text().splitlines() if codes.exists() else []
    if not ended:
        last = log[-1].split()[1] if log else "0"
        hung = "the final wait for the server" if last == "end" else commands[int(last)]
        pytest.fail(f"README tour hung (900 s) at: {hung}\n{output[-3000:]}")
    ran = dict(line.split() for line in log if not line.startswith("start"))
    assert len(ran) == len(commands), output[-3000:]
    for i, line in enumerate(commands):
        code = int(ran[str(i)])
        allowed = {0, 3} if line.startswith(VERDICTS) else {0}
        assert code in allowed, f"README tour line {i + 1} exited {code}: {line}\n{output[-3000:]}"
    project = tmp_path / "churn"
    assert '"labels"' in output  # the curl line got an answer
    assert (project / "scored.parquet").exists() and (project / "story.html").exists()
    assert (project / "bundle" / "predict.py").exists()
    assert "test.accuracy" in (project / "runs.html").read_text()  # the dashboard answered

    python = subprocess.run(
        [sys.executable, "-c", _block("python")],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert python.returncode == 0, python.stderr[-3000:]
    assert "added iris@1" in python.stdout
