"""A two-node Ray cluster with no shared folder: DDP training, batch scoring and a study.

The head and a second node are separate ``ray start`` processes on loopback,
each in a temporary folder of its own (its working directory and Ray's
``--temp-dir``), with one CPU each, so that two training replicas need both
nodes. They are given neither the project nor the AWS credentials: the
driver, ``mlcycle train --executor ray`` run in a third folder that holds
only ``mlcycle.yaml``, hands its workers the spec and the credentials. The
metadata is in the real PostgreSQL, the artifacts in a real S3 API on
loopback (moto's server). Each node runs in a session of its own, which the
test kills as a whole at the end (not ``ray stop``, which would stop every
Ray of this machine's user) and then checks that nothing of it is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pyarrow.parquet as pq
import pytest
import yaml

import mlcycle
from mlcycle import Project
from mlcycle.batch import score_file
from mlcycle.train import train
from mlcycle.workflow import register
from tests._s3 import CREDENTIALS, s3_server

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SRC = str(Path(mlcycle.__file__).resolve().parents[1])
RAY = str(Path(sys.executable).with_name("ray"))
MLCYCLE = str(Path(sys.executable).with_name("mlcycle"))
# No dropout: the replicas then take one process's steps, up to float rounding (with it,
# they draw masks of their own, and single runs differ by dropout's seed noise).
TRAIN = {"max_epochs": 5, "seed": 3, "model": {"hidden": [32], "dropout": 0.0}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _session_processes(sid: int) -> list[int]:
    """The processes of session ``sid`` still alive (zombies excluded)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            alive.append(int(entry.name))
    return alive


class Node:
    """One ``ray start --block`` in its own folder and session."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="rn"))  # short: Ray's socket paths
        self.log = self.folder / "start.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    RAY,
                    "start",
                    "--block",
                    "--num-cpus=1",
                    "--disable-usage-stats",
                    "--object-store-memory=100000000",
                    f"--temp-dir={self.folder / 'ray'}",
                    *args,
                ],
                cwd=self.folder,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_started(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while "Ray runtime started" not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start failed:\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)

    def kill(self) -> list[int]:
        """Kill the node's whole session; return what survived (nothing, normally)."""
        sid = self.process.pid
        for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(sid, sig)
            deadline = time.monotonic() + wait
            while _session_processes(sid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if not _session_processes(sid):
                break
        self.process.wait(10)
        left = _session_processes(sid)
        shutil.rmtree(self.folder, ignore_errors=True)
        return left


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    """A head and a worker node on loopback; yields the head's address."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLCYCLE_", "RAY_"))}
    env |= {"PYTHONPATH": SRC, "RAY_AUTH_MODE": "disabled"}
    port = _free_port()
    address = f"127.0.0.1:{port}"
    nodes = [
        Node(
            [
                "--head",
                f"--port={port}",
                "--node-ip-address=127.0.0.1",
                "--include-dashboard=false",
            ],
            env,
        )
    ]
    try:
        nodes[0].wait_started()
        nodes.append(Node([f"--address={address}", "--node-ip-address=127.0.0.1"], env))
        nodes[1].wait_started()
        yield address
    finally:
        left = [pid for node in nodes for pid in node.kill()]
        assert left == [], f"Ray processes left running: {left}"


def test_ddp_scoring_and_a_study_on_two_nodes_with_postgres_and_s3(
    tmp_path: Path, pg_url: str, cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with s3_server() as endpoint:
        aws = {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}
        for name, value in aws.items():
            monkeypatch.setenv(name, value)
        spec = {
            "store": {"url": pg_url},
            "artifacts": {"uri": "s3://team-models/digits"},
            "train": TRAIN,
            "tune": {"n_trials": 2, "max_epochs": 3, "pruner": "none"},
        }
        driver = tmp_path / "driver"
        driver.mkdir()
        (driver / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
        with Project(driver, mlcycle.spec.parse_spec(spec)) as project:
            project.datasets.add("sklearn:digits")
            alone = train(project, data="digits", quiet=True)
        shutil.rmtree(driver / ".mlcycle")  # the report of the run above: the folder is bare again
        assert sorted(p.name for p in driver.iterdir()) == ["mlcycle.yaml"]

        env = {**os.environ, **aws, "PYTHONPATH": SRC, "RAY_ADDRESS": cluster}
        env["RAY_AUTH_MODE"] = "disabled"
        started = time.monotonic()
        done = subprocess.run(
            [
                MLCYCLE,
                "train",
                "--data",
                "digits",
                "--executor",
                "ray",
                "--set",
                "workers=2",
                "--json",
            ],
            cwd=driver,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        seconds = time.monotonic() - started
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout)

        with Project(driver, mlcycle.spec.parse_spec(spec)) as project:
            run = project.runs.get(result["run_id"])
            assert run.status == "finished" and run.params["train"]["workers"] == 2
            steps = [p.step for p in project.runs.metrics(run.id, "train_loss")]
            assert steps == list(range(TRAIN["max_epochs"]))
            version = register(project, run.id, "digits-ddp", alias="champion")
            assert project.artifacts.blobs.uri(version.files["model.onnx"]).startswith("s3://")
            n_test = project.datasets.get("digits").n_rows - sum(
                run.params["split"][k] for k in ("train", "validation")
            )
        # Replicas take halves of one process's batches and average their gradients:
        # the same steps up to float rounding, so at most one of ~270 test rows
        # (0.37 points) may differ; the bar is 0.5 points.
        assert abs(result["test"]["accuracy"] - alone.test["accuracy"]) <= 0.005
        assert 1 / n_test < 0.005
        print(f"2-node DDP: {seconds:.1f}s, accuracy {result['test']['accuracy']:.4f}")

        # Batch scoring on both nodes, from the bucket to the bucket: each file's output is
        # the local scorer's output of that file.
        with Project(driver, mlcycle.spec.parse_spec(spec)) as project:
            test_rows = project.datasets.load_split("digits@1")["test"]
            local_model = mlcycle.load("digits-ddp@champion", project=project)
        files = tmp_path / "files"
        files.mkdir()
        bucket = fsspec.filesystem("s3", skip_instance_cache=True)
        bucket.mkdir("team-data")
        for i, start in enumerate(range(0, test_rows.num_rows, 100)):
            pq.write_table(test_rows.slice(start, 100), files / f"part-{i}.parquet")
            bucket.put_file(str(files / f"part-{i}.parquet"), f"team-data/in/part-{i}.parquet")
        scored = subprocess.run(
            [
                *(MLCYCLE, "score", "digits-ddp@champion", "s3://team-data/in/"),
                *("s3://team-data/out/", "--executor", "ray", "--workers", "2", "--json"),
            ],
            cwd=driver,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert scored.returncode == 0, scored.stderr[-3000:]
        scoring = json.loads(scored.stdout)
        assert scoring["rows"] == test_rows.num_rows and scoring["workers"] == 2
        for part in sorted(files.iterdir()):
            score_file(local_model, part, tmp_path / f"local-{part.name}", log=False)
            with bucket.open(f"team-data/out/{part.name}", "rb") as handle:
                assert pq.read_table(handle).equals(pq.read_table(tmp_path / f"local-{part.name}"))

        # A study of two Ray workers, sharing the Optuna study in PostgreSQL.
        study = subprocess.run(
            [
                *(MLCYCLE, "tune", "--data", "digits", "--executor", "ray", "--workers", "2"),
                *("--name", "cluster", "--json"),
            ],
            cwd=driver,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert study.returncode == 0, study.stderr[-3000:]
        summary = json.loads(study.stdout)
        assert summary["storage"] == "postgres"
        assert summary["trials"] == {"complete": 2, "pruned": 0, "failed": 0, "retried": 0}
        assert summary["best"]["test"]["accuracy"] > 0.5

        # A project on SQLite and a local folder cannot train on this cluster: it says why.
        local = tmp_path / "local"
        Project.init(local, name="local").close()
        refused = subprocess.run(
            [MLCYCLE, "train", "--data", "sklearn:iris", "--executor", "ray"],
            cwd=local,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert refused.returncode == 1
        assert "one-machine cluster only" in refused.stderr
        assert "2-node Ray cluster" in refused.stderr
