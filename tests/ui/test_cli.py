"""``mlcycle ui``: the command serves the dashboard of the project it is run in, on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from mlcycle import Project

MLCYCLE = str(Path(sys.executable).with_name("mlcycle"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_mlcycle_ui_serves_the_project_read_only_on_loopback(tmp_path: Path) -> None:
    with (
        Project.init(tmp_path / "p", name="clitest") as project,
        project.runs.start("first-run") as run,
    ):
        run.log_metrics(0, {"loss": 0.5})
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLCYCLE_ADMIN_TOKEN"}
    process = subprocess.Popen(
        [MLCYCLE, "--project", str(tmp_path / "p"), "ui", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                page = httpx.get(f"{url}/runs", timeout=5)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < deadline, "mlcycle ui did not answer"
                time.sleep(0.2)
        assert page.status_code == 200
        assert "first-run" in page.text and "read-only" in page.text
        assert httpx.get(f"{url}/runs", headers={"Host": "evil.test"}).status_code == 421
        refused = httpx.post(
            f"{url}/api/models/x/alias",
            json={"alias": "champion", "version": 1},
            headers={"Authorization": "Bearer guess", "X-Mlcycle-Action": "1"},
        )
        assert refused.status_code == 403 and "read-only" in refused.json()["error"]
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert f"http://127.0.0.1:{port}" in output and "read-only" in output


def test_demo_prints_the_ui_command_of_its_project() -> None:
    from mlcycle.cli._ui import ui_command

    assert ui_command(Path("/tmp/a b")) == "mlcycle --project '/tmp/a b' ui"


def test_the_dashboard_surface_and_what_importing_it_costs() -> None:
    import mlcycle.ui

    assert sorted(mlcycle.ui.__all__) == ["create_app", "plotly_js"]
    code = "import sys, mlcycle.ui; print(sorted(m for m in ('torch', 'sklearn', 'onnxruntime') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
