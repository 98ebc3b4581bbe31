"""What keeping artifacts in S3 costs: register and load, local folder against an S3 API, one run.

Two projects on the same SQLite metadata store layout, differing only in
``artifacts.uri``: a local folder, and ``s3://`` on a real S3 API on loopback
(moto's server, started here). One training run (breast_cancer, a few epochs)
is made in each; then, interleaved ``--repeats`` times, each arm

- registers the run as a new version (ONNX export, parity, reference, OOD
  detector, card: every file goes to the artifact store), and
- loads the newest version with ``mlcycle.load`` (every file read back and
  checked against its sha256).

It reports median wall times and the S3/local ratio. moto runs in-process
memory on this machine, so the figure is the client-side overhead of the S3
protocol (signing, HTTP, multipart upload, server-side copy), not the network
latency of a real region: add your round-trip time per file.

    .venv/bin/python bench/s3_store.py --repeats 7
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests._s3 import CREDENTIALS, s3_server

import mlcycle
from mlcycle import Project
from mlcycle.train import train
from mlcycle.workflow import register


def _project(root: Path, artifacts: str | None) -> Path:
    Project.init(root, name=root.name).close()
    if artifacts is not None:
        (root / "mlcycle.yaml").write_text(yaml.safe_dump({"artifacts": {"uri": artifacts}}))
    with Project.open(root) as project:
        project.datasets.add("sklearn:breast_cancer")
    return root


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, s3_server() as endpoint:
        os.environ.update({**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint})
        arms = {
            "local": _project(Path(tmp) / "local", None),
            "s3": _project(Path(tmp) / "s3", "s3://bench-bucket/artifacts"),
        }
        runs: dict[str, str] = {}
        for arm, root in arms.items():
            with Project.open(root) as project:
                runs[arm] = train(
                    project, data="breast_cancer@1", overrides={"max_epochs": args.epochs}
                ).run_id
        times: dict[str, dict[str, list[float]]] = {a: {"register": [], "load": []} for a in arms}
        for _ in range(args.repeats):
            for arm, root in arms.items():
                with Project.open(root) as project:
                    started = time.perf_counter()
                    version = register(project, runs[arm], "cancer")
                    times[arm]["register"].append(time.perf_counter() - started)
                    started = time.perf_counter()
                    model = mlcycle.load(f"cancer@{version.version}", project=project)
                    times[arm]["load"].append(time.perf_counter() - started)
                    assert model.version == version.version
    medians = {a: {k: statistics.median(v) for k, v in t.items()} for a, t in times.items()}
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "repeats": args.repeats,
        "median_s": medians,
        "s3_over_local": {
            k: round(medians["s3"][k] / medians["local"][k], 2) for k in ("register", "load")
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
