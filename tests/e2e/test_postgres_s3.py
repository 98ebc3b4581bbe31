"""The same project on PostgreSQL and S3: trained on one machine, served from another's bare folder.

The metadata lives in the real PostgreSQL, the artifacts in a real S3 API on
loopback (moto's server); the serving side is a folder holding only
``mlcycle.yaml``: no ``.mlcycle/`` store, no artifact files. It finds the
version through PostgreSQL, reads the graph from the bucket (verified by its
sha256) and answers as the machine that trained it does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

import mlcycle
from mlcycle import Project
from mlcycle.train import train
from mlcycle.workflow import register
from tests._s3 import CREDENTIALS, s3_server
from tests._servers import wait_ready

pytestmark = pytest.mark.postgres


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with s3_server() as url:
        for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": url}.items():
            monkeypatch.setenv(name, value)
        yield url


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_version_trained_on_postgres_and_s3_serves_from_a_bare_folder(
    tmp_path: Path, pg_url: str, s3_env: str
) -> None:
    spec = {
        "store": {"url": pg_url},
        "artifacts": {"uri": "s3://team-models/cancer"},
    }
    trainer = tmp_path / "trainer"
    Project.init(trainer, name="cancer").close()
    (trainer / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    with Project.open(trainer) as project:
        project.datasets.add("sklearn:breast_cancer")
        outcome = train(project, data="breast_cancer@1", overrides={"max_epochs": 3})
        version = register(project, outcome.run_id, "cancer", alias="champion")
        rows = project.datasets.load_split("breast_cancer@1")["test"].slice(0, 5)
        assert project.artifacts.blobs.uri(version.files["model.onnx"]).startswith("s3://")
    assert not list((trainer / ".mlcycle").rglob("sha256"))  # no artifact was written locally

    server_side = tmp_path / "server"
    server_side.mkdir()
    (server_side / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    expected = mlcycle.load("cancer@champion", project=server_side).predict(rows)
    assert not (server_side / ".mlcycle").exists()

    records = rows.drop(["target"]).to_pylist()
    port = _free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlcycle"),
            "serve",
            "cancer@champion",
            "--port",
            str(port),
        ],
        cwd=server_side,
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(server, url, timeout=90)
        answer = httpx.post(f"{url}/predict", json={"records": records}, timeout=30).json()
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert expected.labels is not None
    assert answer["labels"] == [str(v) for v in expected.labels]
    assert answer["version"] == version.version
    assert expected.probabilities is not None
    classes = list(answer["probabilities"][0])
    served = np.array([[p[c] for c in classes] for p in answer["probabilities"]])
    np.testing.assert_allclose(served, expected.probabilities, rtol=1e-6)

    # monitoring and the loop, on the serving machine: its log, the store's reference on S3
    mlcycle_cli = str(Path(sys.executable).parent / "mlcycle")
    monitored = subprocess.run(
        [mlcycle_cli, "monitor", "cancer@champion", "--last", "100", "--json"],
        cwd=server_side,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert monitored.returncode in (0, 3), monitored.stderr[-2000:]
    report = json.loads(monitored.stdout)
    assert report["window"]["rows"] == len(records)
    ticked = subprocess.run(
        [mlcycle_cli, "loop", "--once"],
        cwd=server_side,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ticked.returncode == 0, ticked.stderr[-2000:]
    status = subprocess.run(
        [mlcycle_cli, "loop", "status", "--model", "cancer", "--json"],
        cwd=trainer,  # the other machine sees the decision: it is in PostgreSQL
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert status.returncode == 0, status.stderr[-2000:]
    state = json.loads(status.stdout)["state"]
    assert state["last_healthy"] is not None or state["misses"], status.stdout[-2000:]
