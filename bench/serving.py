"""Serving throughput and latency: ``mlcycle serve`` against a minimal handler and peers (issue 5).

One ONNX graph (mlcycle's MLP 30 -> 64 -> 32 -> 2, trained here on synthetic
data and registered) is served, one process and one ONNX Runtime intra-op
thread each, by:

* ``mlcycle``: ``mlcycle serve``, KServe V2 route, with everything on
  (signature validation, Prometheus metrics, Parquet prediction log, dynamic
  batching at its defaults ``--max-batch 64 --max-delay-ms 2``);
* ``mlcycle-predict``: the same server's ``POST /predict`` (``{"records": [...]}``);
* ``mlcycle-nobatch``: ``mlcycle serve --max-batch 1`` (V2 route);
* ``minimal``: FastAPI + ONNX Runtime on uvicorn (uvloop, httptools): parse
  JSON, numpy feeds, ``session.run``, JSON out, nothing else
  (``bench/_serving_peers/minimal.py``);
* ``bare``: the HTTP ceiling, a bare ASGI app on the same uvicorn settings
  that reads the body and answers a constant (``bench/_serving_peers/bare.py``,
  in the minimal handler's venv);
* ``mlcycle-grpc``: the same server's Open Inference Protocol over gRPC
  (``--grpc-port``), and ``mlcycle-pyhttp`` its V2 REST route, both driven by
  the same Python closed-loop client (``bench/_serving_peers/pyload.py``;
  wrk speaks no gRPC), so the two transports compare with one load generator;
* ``kserve``: KServe's Python model server, V2 route;
* ``mlflow``: ``mlflow models serve`` on a pyfunc wrapping the graph
  (``--env-manager local``, MLflow's ``{"inputs": {...}}`` tensor format);
* ``litserve``: LitServe, batching off;
* ``bentoml``: a BentoML 1.4 service, one worker, batching off.

mlcycle, minimal, KServe, LitServe and BentoML all receive the same bytes (a
KServe V2 body, one ``FP32 [1]`` tensor per column); ``mlcycle-predict`` and
MLflow get their own formats holding the same row. Peers keep their default
per-request logging. Each peer lives in its own venv under
``~/.cache/mlcycle-bench/envs/<peer>`` (never in mlcycle's environment), made
on first use with the ONNX Runtime version mlcycle has; a peer that cannot be
installed or started is reported as ``unavailable: <reason>``.

Load comes from ``wrk`` (``apt-get install -y wrk``), one thread, a Lua script
POSTing the body, single-row requests. With ``taskset`` every server is pinned
to core 0 and wrk (and this script) to core 1. All servers of a section are
started first (idle they use ~0% CPU), each is checked against ONNX Runtime
in-process on a fixed row (same label, probabilities within 1e-5), then the
points run interleaved: for each connection count and repeat, every arm in
rotating order gets a short warm-up and a timed run. The CPU that other
processes take from the server's core is measured (``/proc/stat``) and a point
where it passes ``--max-noise`` is run again (at most ``--noise-retries``
times; the quietest try counts). Medians over repeats are reported, with
ratios to the minimal handler and to the best full-featured peer from the same
run, the CPU used by each server and by wrk, and the issue's targets.

The model ceiling is ONNX Runtime in-process at the batch size mlcycle ran
(its measured rows per call at each connection count): mlcycle's req/s is
reported as a fraction of it and of the ``bare`` HTTP ceiling.

Then a CNN on Fashion-MNIST images (``image`` FP32 [N, 28, 28], one image
per request): mlcycle with batching on (``--max-batch 64 --max-delay-ms 2``)
against off (``--max-batch 1``) and the minimal handler.

Then gradient-boosted trees (``train.model.kind: gbm``, LightGBM's defaults)
on the MLP's rows, single-row requests, served by mlcycle and the minimal
handler (``--gbm-arms``), its req/s beside the MLP's mlcycle arm (issue 19).

Usage::

    .venv/bin/python bench/serving.py [--duration 10] [--connections 1,8,32]
        [--arms mlcycle,minimal,...] [--repeats 2] [--sections mlp,cnn,gbm] [--keep]

About 15 minutes with the defaults, plus the peers' installs on first use.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

import mlcycle

HERE = Path(__file__).resolve().parent
PEERS_DIR = HERE / "_serving_peers"
CACHE = Path(os.environ.get("MLCYCLE_BENCH_CACHE", Path.home() / ".cache" / "mlcycle-bench"))
N_FEATURES = 30
CNN_DATA = "fashion-mnist:4000"
MLP_ARMS = (
    "mlcycle",
    "mlcycle-predict",
    "mlcycle-nobatch",
    "minimal",
    "bare",
    "mlcycle-grpc",
    "mlcycle-pyhttp",
    "kserve",
    "mlflow",
    "litserve",
    "bentoml",
)
# arms driven by bench/_serving_peers/pyload.py instead of wrk: (mode)
PY_LOAD = {"mlcycle-grpc": "grpc", "mlcycle-pyhttp": "http"}
# the venv a peer runs in, when it is another peer's
ENV_OF = {"bare": "minimal"}
FULL_PEERS = ("kserve", "mlflow", "litserve", "bentoml")
CNN_ARMS = ("mlcycle", "mlcycle-nobatch", "minimal")
GBM_ARMS = ("mlcycle", "minimal")
ORT_VERSION = ort.__version__
# Each peer's venv: the peer pinned at the version this bench was written against,
# the ONNX Runtime mlcycle runs.
PEER_REQUIREMENTS = {
    "minimal": ["fastapi==0.165.0", "uvicorn[standard]==0.54.0", "orjson"],
    "kserve": ["kserve==0.21.0", "pandas<3"],
    "mlflow": ["mlflow==3.17.2", "pandas<3"],
    "litserve": ["litserve==0.2.19"],
    "bentoml": ["bentoml==1.4.40"],
}
PEER_VERSION_OF = {
    "minimal": "fastapi",
    "kserve": "kserve",
    "mlflow": "mlflow",
    "litserve": "litserve",
    "bentoml": "bentoml",
}
QUIET_ENV = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "DO_NOT_TRACK": "1",
    "BENTOML_DO_NOT_TRACK": "True",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "LITSERVE_DISABLE_TELEMETRY": "1",
}
WRK_LUA = r"""
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


class Unavailable(Exception):
    """An arm that cannot run here; the message says why."""


# -- environment ----------------------------------------------------------------


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def base_python() -> str:
    return getattr(sys, "_base_executable", None) or shutil.which("python3") or sys.executable


def ensure_env(peer: str, install_timeout_s: float) -> Path:
    """The peer's own venv (made on first use); its ``bin`` folder."""
    env = CACHE / "envs" / peer
    wanted = [*PEER_REQUIREMENTS[peer], f"onnxruntime=={ORT_VERSION}", "numpy"]
    marker = env / ".bench-requirements"
    if marker.exists() and marker.read_text() == "\n".join(wanted):
        return env / "bin"
    say(f"[env] installing {peer} into {env} (once): {' '.join(wanted)}")
    log = CACHE / "logs" / f"install-{peer}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        if not (env / "bin" / "python").exists():
            subprocess.run([base_python(), "-m", "venv", str(env)], check=True, timeout=120)
        with log.open("w") as out:
            subprocess.run(
                [str(env / "bin" / "python"), "-m", "pip", "install", "-q", *wanted],
                check=True,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=max(30.0, install_timeout_s),
            )
    except subprocess.TimeoutExpired:
        raise Unavailable(f"pip install did not finish in {install_timeout_s:.0f} s") from None
    except subprocess.CalledProcessError:
        tail = [line for line in log.read_text().splitlines() if "ERROR" in line][-1:]
        raise Unavailable(f"pip install failed ({tail[0] if tail else log})") from None
    marker.write_text("\n".join(wanted))
    say(f"[env] {peer} ready in {time.monotonic() - started:.0f} s")
    return env / "bin"


def env_version(bin_dir: Path, package: str) -> str:
    out = subprocess.run(
        [
            str(bin_dir / "python"),
            "-c",
            f"import importlib.metadata as m; print(m.version({package!r}))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.strip() or "?"


def cores() -> tuple[str | None, str | None]:
    """(server core, load core) for taskset, or (None, None) when pinning is not possible."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if shutil.which("taskset") and len(allowed) >= 2:
        return str(allowed[0]), str(allowed[1])
    return None, None


# -- models -------------------------------------------------------------------


@dataclasses.dataclass
class Model:
    kind: str  # "mlp" or "cnn"
    name: str  # registered name in the mlcycle project
    onnx: Path
    row: dict[str, Any]  # input name -> one row's value (float or nested list)
    label: str
    probabilities: list[float]


def reference(onnx_path: Path, feeds: dict[str, np.ndarray[Any, Any]]) -> tuple[str, list[float]]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    out = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))
    return str(out["label"][0]), [float(p) for p in out["probabilities"][0]]


def build_models(root: Path, sections: list[str], cnn_data: str) -> dict[str, Model]:
    """Train and register the models in a fresh project at ``root / "proj"``."""
    import pyarrow as pa

    from mlcycle import Project
    from mlcycle.errors import MlcycleError
    from mlcycle.registry import register
    from mlcycle.train import train

    models: dict[str, Model] = {}
    with Project.init(root / "proj", name="bench") as p:
        rng = np.random.default_rng(0)
        n = 3000
        X = rng.normal(size=(n, N_FEATURES)).astype("float32")
        y = X[:, :5].sum(1) > 0
        if "mlp" in sections or "gbm" in sections:
            table = pa.table(
                {**{f"f{i}": X[:, i] for i in range(N_FEATURES)}, "y": np.where(y, "pos", "neg")}
            )
            p.datasets.add(table, name="synth", target="y")
        if "mlp" in sections:
            started = time.monotonic()
            run = train(
                p, data="synth", overrides={"max_epochs": 3, "model.hidden": [64, 32]}
            ).run_id
            v = register(p, run, "mlp", alias="champion")
            path = root / "mlp.onnx"
            path.write_bytes(p.artifacts.read_bytes(v.files["model.onnx"]))
            row = {f"f{i}": float(X[0, i]) for i in range(N_FEATURES)}
            label, probs = reference(
                path, {k: np.array([v], dtype=np.float32) for k, v in row.items()}
            )
            models["mlp"] = Model("mlp", "mlp", path, row, label, probs)
            say(f"[model] MLP trained and registered in {time.monotonic() - started:.0f} s")
        if "gbm" in sections:  # gradient-boosted trees on the same rows, LightGBM's defaults
            started = time.monotonic()
            run = train(p, data="synth", model="gbm").run_id
            v = register(p, run, "gbm", alias="champion")
            path = root / "gbm.onnx"
            path.write_bytes(p.artifacts.read_bytes(v.files["model.onnx"]))
            row = {f"f{i}": float(X[0, i]) for i in range(N_FEATURES)}
            label, probs = reference(
                path, {k: np.array([v], dtype=np.float32) for k, v in row.items()}
            )
            models["gbm"] = Model("gbm", "gbm", path, row, label, probs)
            trees = p.runs.get(run).summary["trees"]
            say(
                f"[model] gbm ({trees} trees) trained and registered in "
                f"{time.monotonic() - started:.0f} s"
            )
        if "cnn" in sections:
            started = time.monotonic()
            try:
                p.datasets.add(cnn_data, name="images")
            except MlcycleError as exc:
                say(f"[model] {cnn_data} unavailable ({exc}); using sklearn:digits")
                cnn_data = "sklearn:digits"
                p.datasets.add(cnn_data, name="images")
            run = train(p, data="images", model="cnn", overrides={"max_epochs": 1}).run_id
            v = register(p, run, "cnn", alias="champion")
            shape = next(s for s in v.signature["inputs"] if s["kind"] == "image")["shape"][1:]
            path = root / "cnn.onnx"
            path.write_bytes(p.artifacts.read_bytes(v.files["model.onnx"]))
            image = np.random.default_rng(1).integers(0, 256, size=shape)
            label, probs = reference(path, {"image": image[None].astype(np.float32)})
            models["cnn"] = Model("cnn", "cnn", path, {"image": image.tolist()}, label, probs)
            say(
                f"[model] CNN ({cnn_data}, image {shape}) trained and registered in "
                f"{time.monotonic() - started:.0f} s"
            )
    return models


def ort_cost(model: Model, batches: tuple[int, ...] = (1, 8, 64)) -> dict[int, float]:
    """In-process ONNX Runtime time per row (us), one thread, by batch size: what batching saves."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model.onnx), options, providers=["CPUExecutionProvider"])
    out = {}
    for n in batches:
        feeds = {
            k: np.repeat(np.asarray(v, dtype=np.float32)[None], n, axis=0)
            for k, v in model.row.items()
        }
        calls = max(20, 2000 // n)
        for _ in range(10):
            session.run(None, feeds)
        started = time.perf_counter()
        for _ in range(calls):
            session.run(None, feeds)
        out[n] = (time.perf_counter() - started) / calls / n * 1e6
    return out


# -- request bodies and answers ---------------------------------------------------


def v2_body(model: Model) -> dict[str, Any]:
    inputs = []
    for name, value in model.row.items():
        arr = np.asarray(value)
        inputs.append(
            {
                "name": name,
                "shape": [1, *arr.shape],
                "datatype": "FP32",
                "data": arr.ravel().tolist(),
            }
        )
    return {"inputs": inputs}


def v2_answer(model: Model) -> dict[str, Any]:
    """The V2 answer for the check row, as the constant the ``bare`` arm sends."""
    return {
        "model_name": "m",
        "outputs": [
            {"name": "label", "shape": [1], "datatype": "BYTES", "data": [model.label]},
            {
                "name": "probabilities",
                "shape": [1, len(model.probabilities)],
                "datatype": "FP32",
                "data": model.probabilities,
            },
        ],
    }


def grpc_request(model: Model) -> Any:
    """The check row as a gRPC ``ModelInferRequest``, tensors raw (as tritonclient sends them)."""
    from mlcycle.serve.proto import grpc_predict_v2_pb2 as pb

    request = pb.ModelInferRequest(model_name=model.name)
    for name, value in model.row.items():
        arr = np.asarray(value, dtype=np.float32)[None]
        request.inputs.add(name=name, datatype="FP32", shape=list(arr.shape))
        request.raw_input_contents.append(arr.tobytes())
    return request


def grpc_answer(target: str, request: Any) -> tuple[str, list[float]]:
    import grpc

    from mlcycle.serve.proto import grpc_predict_v2_pb2 as pb

    with grpc.insecure_channel(target) as channel:
        infer = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        answer = infer(request, timeout=10)
    raw = dict(zip([o.name for o in answer.outputs], answer.raw_output_contents, strict=True))
    label = raw["label"][4 : 4 + int.from_bytes(raw["label"][:4], "little")].decode()
    return label, np.frombuffer(raw["probabilities"], np.float32).tolist()


def body_for(arm: str, model: Model) -> dict[str, Any]:
    if arm == "mlcycle-predict":
        return {"records": [model.row]}
    if arm == "mlflow":
        return {"inputs": {k: [v] for k, v in model.row.items()}}
    return v2_body(model)


def answer_of(arm: str, data: Any) -> tuple[str, list[float]]:
    """(label, probabilities) of the first row in ``arm``'s answer."""
    if arm == "mlcycle-predict":
        probs = data["probabilities"][0]
        return str(data["labels"][0]), [float(v) for v in probs.values()]
    if arm == "mlflow":
        return str(data["predictions"]["label"][0]), [
            float(v) for v in data["predictions"]["probabilities"][0]
        ]
    outputs = {o["name"]: o for o in data["outputs"]}
    return str(outputs["label"]["data"][0]), [float(v) for v in outputs["probabilities"]["data"]]


def post(url: str, body: bytes, timeout: float = 10.0) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:300]


# -- servers --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclasses.dataclass
class Server:
    arm: str
    model: Model
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    body_path: Path | None = None
    log_path: Path | None = None
    metrics_url: str | None = None
    version: str = ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 3) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = [t for t in self.log_path.read_text(errors="replace").splitlines() if t.strip()]
        return " | ".join(text[-lines:])[-400:]

    def tree(self) -> dict[int, tuple[int, int]]:
        """The server's live processes (leader and descendants): pid -> (utime, stime) ticks."""
        if self.process is None:
            return {}
        stats: dict[int, tuple[int, int, int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            stats[int(entry)] = (int(fields[1]), int(fields[11]), int(fields[12]))
        found, frontier = {}, [self.process.pid]
        while frontier:
            pid = frontier.pop()
            if pid in stats and pid not in found:
                found[pid] = stats[pid][1:]
                frontier += [child for child, s in stats.items() if s[0] == pid]
        return found

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        pids = self.tree()  # some peers (BentoML) start workers in sessions of their own
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        time.sleep(0.5)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def cpu_seconds(self) -> float:
        """User + system CPU of the server's live processes."""
        return sum(u + s for u, s in self.tree().values()) / os.sysconf("SC_CLK_TCK")

    def batch_rows(self) -> tuple[float, float] | None:
        """(sum, count) of mlcycle's rows-per-ONNX-call histogram."""
        if self.metrics_url is None:
            return None
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return None
        found = dict(re.findall(r"^mlcycle_batch_rows_(sum|count) ([0-9.e+]+)$", text, re.M))
        if "sum" not in found:
            return None
        return float(found["sum"]), float(found["count"])


def launch(
    server: Server,
    work: Path,
    core: str | None,
    envs: dict[str, Path],
    mlcycle_cmd: list[str],
    mlcycle_env: dict[str, str],
) -> None:
    """Start ``server``, wait until it answers the check request, and check the answer."""
    arm, model = server.arm, server.model
    port = free_port()
    env = {**os.environ, **QUIET_ENV}
    cwd = work
    mlcycle_arm = arm.startswith("mlcycle")
    grpc_port = free_port() if arm == "mlcycle-grpc" else None
    if mlcycle_arm:
        batch = ["--max-batch", "1"] if arm == "mlcycle-nobatch" else []
        ref = f"{model.name}@champion"
        cmd = [*mlcycle_cmd, "--project", str(work / "proj"), "serve", ref, "--port", str(port)]
        cmd += batch
        if grpc_port is not None:
            cmd += ["--grpc-port", str(grpc_port)]
        env.update(mlcycle_env)
        path = "/predict" if arm == "mlcycle-predict" else f"/v2/models/{model.name}/infer"
        server.metrics_url = f"http://127.0.0.1:{port}/metrics"
        server.version = f"mlcycle {mlcycle.__version__}"
    else:
        bin_dir = envs[arm]
        py = str(bin_dir / "python")
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"  # mlflow runs `uvicorn`
        env.pop("PYTHONPATH", None)
        onnx = str(model.onnx)
        package = PEER_VERSION_OF[ENV_OF.get(arm, arm)]
        server.version = f"{arm} ({package} {env_version(bin_dir, package)})"
        if arm == "minimal":
            cmd, path = [py, str(PEERS_DIR / "minimal.py"), onnx, str(port)], "/v2/models/m/infer"
        elif arm == "bare":
            answer_path = work / f"answer-{model.kind}.json"
            answer_path.write_bytes(json.dumps(v2_answer(model)).encode())
            cmd = [py, str(PEERS_DIR / "bare.py"), str(answer_path), str(port)]
            path = "/v2/models/m/infer"
        elif arm == "kserve":
            cmd = [py, str(PEERS_DIR / "kserve_server.py"), onnx, str(port)]
            path = "/v2/models/m/infer"
        elif arm == "litserve":
            cmd, path = [py, str(PEERS_DIR / "litserve_server.py"), onnx, str(port)], "/predict"
        elif arm == "bentoml":
            env["BENCH_ONNX"] = onnx
            env["BENTOML_HOME"] = str(CACHE / "bentoml-home")
            cwd = PEERS_DIR
            cmd = [str(bin_dir / "bentoml"), "serve", "bentoml_service:OnnxService"]
            cmd += ["--host", "127.0.0.1", "--port", str(port)]
            path = "/infer"
        elif arm == "mlflow":
            target = work / f"mlflow-{model.kind}"
            if not target.exists():
                built = subprocess.run(
                    [py, str(PEERS_DIR / "mlflow_model.py"), onnx, str(target)],
                    env=env,
                    cwd=work,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                if built.returncode != 0:
                    raise Unavailable(f"building the pyfunc model failed: {built.stderr[-300:]}")
            cmd = [str(bin_dir / "mlflow"), "models", "serve", "-m", str(target)]
            cmd += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
            path = "/invocations"
        else:
            raise Unavailable(f"unknown arm {arm!r}")
    if core is not None:
        cmd = ["taskset", "-c", core, *cmd]
    server.url = f"http://127.0.0.1:{port}{path}"
    body = json.dumps(body_for(arm, model)).encode()
    server.body_path = work / f"body-{model.kind}-{arm}.json"
    server.body_path.write_bytes(body)
    server.log_path = work / f"server-{model.kind}-{arm}.log"
    with server.log_path.open("wb") as log:
        server.process = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 180
    status, answer = 0, None
    while time.monotonic() < deadline:
        if not server.alive():
            raise Unavailable(
                f"server exited with {server.process.returncode}: {server.log_tail()}"
            )
        try:
            status, answer = post(server.url, body, timeout=5)
        except OSError:
            status = 0
        if status == 200:
            break
        time.sleep(0.5)
    else:
        raise Unavailable(f"no 200 answer in 180 s (last status {status}): {server.log_tail()}")
    label, probs = answer_of(arm, answer)
    if label != model.label or not np.allclose(probs, model.probabilities, atol=1e-5):
        raise Unavailable(
            f"wrong answer: {label} {probs}, expected {model.label} {model.probabilities}"
        )
    if grpc_port is not None:  # from here on the arm is the gRPC service of the same server
        server.url = f"127.0.0.1:{grpc_port}"
        server.body_path = work / f"body-{model.kind}-{arm}.bin"
        server.body_path.write_bytes(grpc_request(model).SerializeToString())
        label, probs = grpc_answer(server.url, grpc_request(model))
        if label != model.label or not np.allclose(probs, model.probabilities, atol=1e-5):
            raise Unavailable(f"wrong gRPC answer: {label} {probs}")


# -- load ---------------------------------------------------------------------


def core_busy(core: str | None) -> float:
    """Busy seconds of ``core`` since boot (all processes), from /proc/stat."""
    if core is None:
        return 0.0
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            ticks = [int(v) for v in line.split()[1:]]
            return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    return 0.0


def run_wrk(
    server: Server,
    conns: int,
    duration: float,
    core: str | None,
    lua: Path,
    server_core: str | None = None,
) -> dict[str, Any]:
    """One wrk run against ``server``; its figures plus the CPU wrk and the server used."""
    if server.arm in PY_LOAD:
        cmd = [sys.executable, str(PEERS_DIR / "pyload.py"), PY_LOAD[server.arm], server.url]
        cmd += [str(server.body_path), str(conns), str(max(1, round(duration)))]
    else:
        cmd = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(duration))}s", "--timeout", "10s"]
        cmd += ["-s", str(lua), server.url]
    if core is not None:
        cmd = ["taskset", "-c", core, *cmd]
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = server.cpu_seconds()
    batches = server.batch_rows()
    busy = core_busy(server_core)
    started = time.monotonic()
    out = subprocess.run(
        cmd,
        env={**os.environ, "BENCH_BODY": str(server.body_path)},
        capture_output=True,
        text=True,
        timeout=duration + 60,
    )
    wall = time.monotonic() - started
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = core_busy(server_core) - busy
    line = next((t for t in out.stdout.splitlines() if t.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {out.stdout[-300:]} {out.stderr[-300:]}")
    r = json.loads(line.removeprefix("BENCHJSON "))
    seconds = r["duration_us"] / 1e6
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    wrk_cpu = (after_children.ru_utime + after_children.ru_stime) - (
        before_children.ru_utime + before_children.ru_stime
    )
    result = {
        "rps": r["requests"] / seconds,
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "max_ms": r["max_us"] / 1000,
        "errors": errors,
        "wrk_cpu": wrk_cpu / wall,
        "server_cpu": (server.cpu_seconds() - server_cpu) / wall,
    }
    if server_core is not None:  # other processes on the server's core: noise, not the server
        result["foreign_cpu"] = max(0.0, busy / wall - result["server_cpu"])
    after = server.batch_rows()
    if batches is not None and after is not None and after[1] > batches[1]:
        result["rows_per_call"] = (after[0] - batches[0]) / (after[1] - batches[1])
    return result


def measure(
    servers: list[Server],
    connections: list[int],
    repeats: int,
    duration: float,
    warmup: float,
    load_core: str | None,
    lua: Path,
    server_core: str | None,
    max_noise: float = 0.1,
    retries: int = 2,
) -> dict[str, dict[int, list[dict[str, Any]]]]:
    """Interleaved points: for each connection count and repeat, every arm in rotating order."""
    results: dict[str, dict[int, list[dict[str, Any]]]] = {s.arm: {} for s in servers}
    for s in servers:  # first warm-up: JIT-free, but caches, allocators and pools fill
        run_wrk(s, max(connections), max(warmup, 2), load_core, lua)
    for ci, conns in enumerate(connections):
        for rep in range(repeats):
            shift = (rep + ci) % len(servers)
            for s in servers[shift:] + servers[:shift]:
                if not s.alive():
                    continue
                attempts = []
                for _ in range(1 + retries):
                    if warmup > 0:
                        run_wrk(s, conns, warmup, load_core, lua)
                    attempts.append(run_wrk(s, conns, duration, load_core, lua, server_core))
                    if attempts[-1].get("foreign_cpu", 0.0) <= max_noise:
                        break
                # other tenants of the server's core slow it down: keep the quietest try
                r = min(attempts, key=lambda a: a.get("foreign_cpu", 0.0))
                r["tries"] = len(attempts)
                results[s.arm].setdefault(conns, []).append(r)
                extra = f", {r['rows_per_call']:.1f} rows/call" if "rows_per_call" in r else ""
                say(
                    f"  {s.model.kind} {s.arm:16s} c={conns:<3d} rep {rep + 1}: "
                    f"{r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:7.2f} ms"
                    f"  errors {r['errors']}  server {r['server_cpu']:.2f} core  "
                    f"wrk {r['wrk_cpu']:.2f} core, others {r.get('foreign_cpu', 0):.2f}{extra}"
                )
    return results


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(runs)}
    keys = ("rps", "p50_ms", "p99_ms", "max_ms", "wrk_cpu", "server_cpu", "foreign_cpu")
    for key in (*keys, "rows_per_call"):
        values = [r[key] for r in runs if key in r]
        if values:
            out[key] = round(statistics.median(values), 3 if key != "rps" else 1)
    out["errors"] = sum(r["errors"] for r in runs)
    out["tries"] = sum(r.get("tries", 1) for r in runs)
    return out


@contextlib.contextmanager
def started(
    arms: list[str], model: Model, work: Path, core: str | None, envs: dict[str, Path], **kw: Any
) -> Iterator[tuple[list[Server], dict[str, str]]]:
    servers: list[Server] = []
    unavailable: dict[str, str] = {}
    try:
        for arm in arms:
            if arm in envs or arm.startswith("mlcycle"):
                server = Server(arm, model)
                say(f"[{model.kind}] starting {arm}")
                try:
                    launch(server, work, core, envs, **kw)
                except (Unavailable, OSError, subprocess.SubprocessError) as exc:
                    server.stop()
                    unavailable[arm] = f"unavailable: {exc}"
                    say(f"[{model.kind}] {arm} {unavailable[arm]}")
                    continue
                servers.append(server)
        yield servers, unavailable
    finally:
        for server in servers:
            server.stop()


# -- report -------------------------------------------------------------------


def table(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def report_mlp(
    summary: dict[str, dict[int, dict[str, Any]]], connections: list[int]
) -> tuple[str, dict[str, Any]]:
    rows, ratios = [], {}
    for conns in connections:
        here = {arm: s[conns] for arm, s in summary.items() if conns in s}
        peers = {a: here[a]["rps"] for a in FULL_PEERS if a in here}
        best = max(peers, key=lambda a: peers[a]) if peers else None
        minimal = here.get("minimal", {}).get("rps")
        ratios[conns] = {"best_peer": best}
        for arm, s in here.items():
            vs_min = s["rps"] / minimal if minimal else None
            vs_peer = s["rps"] / peers[best] if best else None
            if arm.startswith("mlcycle"):
                ratios[conns][arm] = {"vs_minimal": vs_min, "vs_best_peer": vs_peer}
            rows.append(
                [
                    arm,
                    str(conns),
                    f"{s['rps']:,.0f}",
                    f"{s['p50_ms']:.2f}",
                    f"{s['p99_ms']:.2f}",
                    f"{vs_min:.2f}" if vs_min else "-",
                    f"{vs_peer:.2f}" if vs_peer else "-",
                    f"{s['server_cpu']:.2f}",
                    f"{s['wrk_cpu']:.2f}",
                    f"{s.get('foreign_cpu', 0):.2f}",
                    str(s["errors"]),
                ]
            )
    header = [
        "arm",
        "conns",
        "req/s",
        "p50 ms",
        "p99 ms",
        "vs minimal",
        "vs best peer",
        "server cores",
        "wrk cores",
        "others' cores",
        "errors",
    ]
    return table(rows, header), ratios


def report_ceilings(
    summary: dict[str, dict[int, dict[str, Any]]], connections: list[int], costs: dict[int, float]
) -> tuple[str, dict[int, dict[str, Any]]]:
    """mlcycle's V2 route against the HTTP ceiling (``bare``) and the model ceiling: ONNX
    Runtime in-process (``costs``: us per row by batch size) at the batch size mlcycle ran
    (its rows per call at that point)."""
    mine = summary.get("mlcycle", {})
    batch = {c: max(1, round(mine[c].get("rows_per_call", 1.0))) for c in connections if c in mine}
    batch = {c: b for c, b in batch.items() if b in costs}
    rows, out = [], {}
    for c, b in batch.items():
        rps = mine[c]["rps"]
        model_ceiling = 1e6 / costs[b]
        http = summary.get("bare", {}).get(c, {}).get("rps")
        out[c] = {
            "batch": b,
            "ort_req_s": round(model_ceiling, 1),
            "vs_model": rps / model_ceiling,
            "bare_req_s": http,
            "vs_http": rps / http if http else None,
        }
        rows.append(
            [
                str(c),
                f"{rps:,.0f}",
                f"{http:,.0f}" if http else "-",
                f"{rps / http:.2f}" if http else "-",
                str(b),
                f"{model_ceiling:,.0f}",
                f"{rps / model_ceiling:.3f}",
            ]
        )
    header = [
        "conns",
        "mlcycle req/s",
        "bare ASGI req/s",
        "mlcycle / bare",
        "ORT batch",
        "ORT in-process req/s",
        "mlcycle / ORT",
    ]
    return table(rows, header), out


def report_grpc(
    summary: dict[str, dict[int, dict[str, Any]]], connections: list[int]
) -> tuple[str, dict[int, float]]:
    """mlcycle over gRPC against its own V2 REST route, one Python load generator for both."""
    grpc, rest = summary.get("mlcycle-grpc", {}), summary.get("mlcycle-pyhttp", {})
    rows, ratios = [], {}
    for c in connections:
        if c not in grpc or c not in rest:
            continue
        ratios[c] = grpc[c]["rps"] / rest[c]["rps"]
        rows.append(
            [
                str(c),
                f"{grpc[c]['rps']:,.0f}",
                f"{grpc[c]['p50_ms']:.2f}",
                f"{rest[c]['rps']:,.0f}",
                f"{rest[c]['p50_ms']:.2f}",
                f"{ratios[c]:.2f}",
                f"{grpc[c]['wrk_cpu']:.2f} / {rest[c]['wrk_cpu']:.2f}",
            ]
        )
    header = [
        "conns",
        "gRPC req/s",
        "gRPC p50 ms",
        "REST req/s",
        "REST p50 ms",
        "gRPC / REST",
        "client cores (gRPC / REST)",
    ]
    return table(rows, header), ratios


def targets(summary: dict[str, dict[int, dict[str, Any]]], at: int) -> dict[str, Any]:
    m = summary.get("mlcycle", {}).get(at)
    if m is None:
        return {}
    out: dict[str, Any] = {"connections": at}
    peers = {a: summary[a][at]["rps"] for a in FULL_PEERS if at in summary.get(a, {})}
    if peers:
        best = max(peers, key=lambda a: peers[a])
        ratio = m["rps"] / peers[best]
        out["vs_best_peer"] = {"peer": best, "ratio": ratio, "target": 2.0, "met": ratio >= 2.0}
    if at in summary.get("minimal", {}):
        ratio = m["rps"] / summary["minimal"][at]["rps"]
        out["vs_minimal"] = {"ratio": ratio, "target": 0.75, "met": ratio >= 0.75}
    out["p99_ms"] = {"value": m["p99_ms"], "target": 15.0, "met": m["p99_ms"] < 15.0}
    return out


def git_state() -> str:
    """The commit mlcycle's source is at, and whether src/ has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "../src"],
            cwd=HERE,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "?"
    return f"{head}{' + uncommitted src/ changes' if dirty else ''}"


def fmt_costs(costs: dict[int, float]) -> str:
    return ", ".join(f"batch {n}: {us:.1f}" for n, us in costs.items())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per timed point")
    ap.add_argument("--warmup", type=float, default=1.0, help="untimed seconds before each point")
    ap.add_argument("--connections", default="1,8,32", help="comma-separated connection counts")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per arm and point")
    ap.add_argument("--arms", default=",".join(MLP_ARMS), help="MLP arms: " + ",".join(MLP_ARMS))
    ap.add_argument("--sections", default="mlp,cnn,gbm", help="any of mlp, cnn, gbm")
    ap.add_argument("--cnn-connections", default="32")
    ap.add_argument("--cnn-arms", default=",".join(CNN_ARMS))
    ap.add_argument("--cnn-data", default=CNN_DATA, help="image dataset for the CNN")
    ap.add_argument("--gbm-arms", default=",".join(GBM_ARMS), help="arms serving the gbm")
    ap.add_argument(
        "--max-noise",
        type=float,
        default=0.1,
        help="re-run a point when other processes used more than this share of the server core",
    )
    ap.add_argument("--noise-retries", type=int, default=2, help="re-runs of a noisy point")
    ap.add_argument("--install-timeout", type=float, default=600, help="seconds per peer install")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, project)")
    args = ap.parse_args(argv)

    if shutil.which("wrk") is None:
        say("wrk is not installed: apt-get install -y wrk (Debian), then run this again")
        return 2
    connections = [int(c) for c in args.connections.split(",")]
    cnn_connections = [int(c) for c in args.cnn_connections.split(",")]
    sections = [s for s in args.sections.split(",") if s]
    mlp_arms = [a for a in args.arms.split(",") if a] if "mlp" in sections else []
    cnn_arms = [a for a in args.cnn_arms.split(",") if a] if "cnn" in sections else []
    gbm_arms = [a for a in args.gbm_arms.split(",") if a] if "gbm" in sections else []
    for arm in {*mlp_arms, *cnn_arms, *gbm_arms}:
        if arm not in MLP_ARMS:
            ap.error(f"unknown arm {arm!r}")
    server_core, load_core = cores()
    tree = git_state()  # servers import src/ as it is now
    work = Path(tempfile.mkdtemp(prefix="mlcycle-bench-serving-"))
    lua = work / "post.lua"
    lua.write_text(WRK_LUA)
    mlcycle_bin = Path(sys.executable).parent / "mlcycle"
    mlcycle_cmd = (
        [str(mlcycle_bin)]
        if mlcycle_bin.exists()
        else [sys.executable, "-c", "import sys; from mlcycle.cli import main; sys.exit(main())"]
    )
    launch_kw = {"mlcycle_cmd": mlcycle_cmd, "mlcycle_env": {}}

    unavailable: dict[str, dict[str, str]] = {"mlp": {}, "cnn": {}, "gbm": {}}
    peers = sorted({a for a in (*mlp_arms, *cnn_arms, *gbm_arms) if not a.startswith("mlcycle")})
    envs: dict[str, Path] = {}
    needed = sorted({ENV_OF.get(p, p) for p in peers})
    with ThreadPoolExecutor(max_workers=max(1, len(needed))) as pool:
        futures = {p: pool.submit(ensure_env, p, args.install_timeout) for p in needed}
        for env, future in futures.items():
            users = [p for p in peers if ENV_OF.get(p, p) == env]
            try:
                bin_dir = future.result()
            except (Unavailable, OSError, subprocess.SubprocessError) as exc:
                for peer in users:
                    for section in unavailable:
                        unavailable[section][peer] = f"unavailable: {exc}"
                    say(f"[env] {peer} unavailable: {exc}")
                continue
            envs.update(dict.fromkeys(users, bin_dir))
    say(f"[work] {work}")
    models = build_models(work, [s for s in ("mlp", "cnn", "gbm") if s in sections], args.cnn_data)
    if load_core is not None:  # from here on this script and wrk stay off the server's core
        os.sched_setaffinity(0, {int(load_core)})

    results: dict[str, Any] = {}
    costs: dict[str, dict[int, float]] = {}
    ceiling_costs: dict[int, float] = {}
    versions: dict[str, str] = {}
    plan: list[tuple[str, list[str], list[int]]] = []
    if mlp_arms:
        plan.append(("mlp", mlp_arms, connections))
    if cnn_arms:
        plan.append(("cnn", cnn_arms, cnn_connections))
    if gbm_arms:
        plan.append(("gbm", gbm_arms, connections))
    try:
        for section, arms, conns in plan:
            model = models[section]
            costs[section] = ort_cost(model)
            say(f"[{section}] ONNX Runtime in-process, us per row by batch size: {costs[section]}")
            with started(arms, model, work, server_core, envs, **launch_kw) as (servers, gone):
                unavailable[section].update(gone)
                versions.update({s.arm: s.version for s in servers})
                say(f"[{section}] {len(servers)} servers up; measuring")
                raw = measure(
                    servers,
                    conns,
                    args.repeats,
                    args.duration,
                    args.warmup,
                    load_core,
                    lua,
                    server_core,
                    args.max_noise,
                    args.noise_retries,
                )
            results[section] = {
                arm: {c: summarize(r) for c, r in by_conn.items()} for arm, by_conn in raw.items()
            }
            if section == "mlp":  # the model ceiling at the batch sizes mlcycle ran
                ran = results[section].get("mlcycle", {}).values()
                sizes = {max(1, round(s.get("rows_per_call", 1.0))) for s in ran}
                ceiling_costs = ort_cost(model, tuple(sorted(sizes))) if sizes else {}
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    machine = (
        f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, onnxruntime {ORT_VERSION}, "
        + (
            f"servers pinned to core {server_core}, wrk to core {load_core}"
            if server_core
            else "no pinning (taskset or a second core missing)"
        )
    )
    print(f"\nServing bench — {machine}")
    print(f"duration {args.duration:g} s per point, {args.repeats} repeats, medians; wrk -t1")
    print("versions: " + ", ".join(sorted(set(versions.values()))) + f"; mlcycle at {tree}")
    out: dict[str, Any] = {
        "bench": "serving",
        "machine": machine,
        "duration_s": args.duration,
        "repeats": args.repeats,
        "versions": versions,
        "unavailable": unavailable,
        "ort_us_per_row": costs,
        "mlcycle_tree": tree,
    }
    if "mlp" in results:
        text, ratios = report_mlp(results["mlp"], connections)
        print("\nMLP 30-64-32-2, single-row requests\n" + text)
        print(f"ONNX Runtime in-process, us per row by batch size: {fmt_costs(costs['mlp'])}")
        goal = targets(results["mlp"], max(connections))
        out.update(mlp=results["mlp"], ratios=ratios, targets=goal)
        one = results["mlp"]
        if 1 in one.get("mlcycle", {}) and 1 in one.get("minimal", {}):
            ratio = one["mlcycle"][1]["rps"] / one["minimal"][1]["rps"]
            out["target_1_connection"] = {"vs_minimal": ratio, "target": 0.9, "met": ratio >= 0.9}
            print(
                f"  at 1 connection, vs_minimal: {ratio:.2f} (target 0.9) "
                f"{'met' if ratio >= 0.9 else 'MISSED'}"
            )
        text, ceilings = report_ceilings(results["mlp"], connections, ceiling_costs)
        if ceilings:
            print("\nmlcycle (V2 route) against the HTTP and model ceilings\n" + text)
            out["ceilings"] = ceilings
        text, grpc_ratios = report_grpc(results["mlp"], connections)
        if grpc_ratios:
            print("\nmlcycle over gRPC against its REST V2 route (same Python client)\n" + text)
            out["grpc_vs_rest"] = grpc_ratios
        if goal:
            print(f"\nTargets at {goal['connections']} connections (mlcycle, V2 route):")
            for key, t in goal.items():
                if isinstance(t, dict):
                    value = t.get("ratio", t.get("value"))
                    print(
                        f"  {key}: {value:.2f} (target {t['target']:g}) "
                        f"{'met' if t['met'] else 'MISSED'}"
                    )
    if "cnn" in results:
        rows = []
        base = {c: results["cnn"].get("minimal", {}).get(c, {}).get("rps") for c in cnn_connections}
        for arm, by_conn in results["cnn"].items():
            for c, s in by_conn.items():
                rows.append(
                    [
                        arm,
                        str(c),
                        f"{s['rps']:,.0f}",
                        f"{s['p50_ms']:.2f}",
                        f"{s['p99_ms']:.2f}",
                        f"{s['rps'] / base[c]:.2f}" if base.get(c) else "-",
                        f"{s['rows_per_call']:.1f}" if "rows_per_call" in s else "-",
                        f"{s['server_cpu']:.2f}",
                        f"{s.get('foreign_cpu', 0):.2f}",
                        str(s["errors"]),
                    ]
                )
        header = ["arm", "conns", "req/s", "p50 ms", "p99 ms", "vs minimal", "rows/call"]
        shape = "x".join(str(d) for d in np.asarray(models["cnn"].row["image"]).shape)
        print(
            f"\nCNN on {shape} images, one image per request\n"
            + table(rows, [*header, "server cores", "others' cores", "errors"])
        )
        print(f"ONNX Runtime in-process, us per row by batch size: {fmt_costs(costs['cnn'])}")
        out["cnn"] = results["cnn"]
    if "gbm" in results:
        rows = []
        mlp = results.get("mlp", {}).get("mlcycle", {})
        for arm, by_conn in results["gbm"].items():
            for c, s in by_conn.items():
                beside = mlp.get(c, {}).get("rps") if arm == "mlcycle" else None
                rows.append(
                    [
                        arm,
                        str(c),
                        f"{s['rps']:,.0f}",
                        f"{beside:,.0f}" if beside else "-",
                        f"{s['p50_ms']:.2f}",
                        f"{s['p99_ms']:.2f}",
                        f"{s['rows_per_call']:.1f}" if "rows_per_call" in s else "-",
                        f"{s['server_cpu']:.2f}",
                        str(s["errors"]),
                    ]
                )
        header = ["arm", "conns", "req/s", "MLP req/s", "p50 ms", "p99 ms", "rows/call"]
        print(
            "\ngbm (LightGBM, 30 features), single-row requests, beside the MLP's mlcycle arm\n"
            + table(rows, [*header, "server cores", "errors"])
        )
        print(f"ONNX Runtime in-process, us per row by batch size: {fmt_costs(costs['gbm'])}")
        out["gbm"] = results["gbm"]
    arms_of = {"mlp": mlp_arms, "cnn": cnn_arms, "gbm": gbm_arms}
    for section, gone in unavailable.items():
        for arm, why in gone.items():
            if arm in arms_of[section]:
                print(f"{section} {arm}: {why}")
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
