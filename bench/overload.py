"""Successful throughput of ``mlcycle serve`` under overload: 1,024-row requests at 4, 64, 200
connections (issue 12).

A server that parses and validates every request before it finds its queue
full spends its time on requests it then refuses: the more connections, the
fewer answers. This bench serves the MLP of ``bench/serving.py`` (30 inputs,
trained and registered here on its synthetic data) with the real CLI,
``mlcycle serve mlp@champion`` at its defaults, one process per source tree
(``--tree NAME=SRC``, put first on ``PYTHONPATH``; each tree builds its own
project, so trees with different store schemas compare), and drives it with
a closed-loop asyncio client (uvloop, raw sockets, keep-alive): each
connection POSTs the same 1,024-row ``/predict`` body (``{"records": [...]}``,
~0.7 MB) again as soon as it has its answer, and ignores ``Retry-After`` (the
worst case, as ``wrk`` does). Reported per tree and connection count:
successful (200) answers per second, the count of 503s and of other answers
or errors, and p50/p99 latency of the successful answers. Points run
interleaved (tree A, tree B, A, B ... for each connection count and repeat);
medians over repeats. The headline figure is successful req/s at 200
connections over that at 4 (the issue asks for at least 80%).

Example::

    git worktree add /tmp/base 8d12ec1
    .venv/bin/python bench/overload.py --tree base=/tmp/base/src --tree this=src

Needs ~1 GB of memory and about 3 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
N_FEATURES = 30
ROWS = 1024


# -- project, in a process of the tree's own -------------------------------------------


def build(root: Path) -> None:
    """Train and register ``mlp@champion`` in a new project at ``root`` (the serving bench's)."""
    sys.path.insert(0, str(HERE))
    from serving import build_models

    build_models(root, ["mlp"], "")


def body(seed: int = 0) -> bytes:
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(ROWS, N_FEATURES)).round(6)
    records = [{f"f{i}": float(v) for i, v in enumerate(row)} for row in x]
    return json.dumps({"records": records}).encode()


# -- server -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(
    src: Path, project: Path, payload: bytes, log: Path, core: int | None
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    rows = len(json.loads(payload)["records"])
    env = {**os.environ, "PYTHONPATH": str(src.resolve()), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", "from mlcycle.cli import main; main()"]
    cmd += ["--project", str(project), "serve", "mlp@champion", "--port", str(port)]
    if core is not None:
        cmd = ["taskset", "-c", str(core), *cmd]
    with log.open("wb") as out:
        process = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server from {src} exited: {log.read_text()[-500:]}")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict", payload, {"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                if reply.status == 200 and len(json.loads(reply.read())["labels"]) == rows:
                    return process, port
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server from {src} did not answer in 180 s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` and its threads."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


# -- load ---------------------------------------------------------------------------------


async def _connection(
    port: int, request: bytes, until: float, counts: dict[str, int], ok_ms: list[float]
) -> None:
    loop = asyncio.get_running_loop()
    reader = writer = None
    while loop.time() < until:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
            assert reader is not None
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lower = head.lower()
            at = lower.index(b"content-length:") + len(b"content-length:")
            length = int(lower[at : lower.index(b"\r\n", at)])
            await reader.readexactly(length)
            status = int(head[9:12])
            if status == 200:
                ok_ms.append((time.perf_counter() - started) * 1000)
                counts["ok"] += 1
            elif status == 503:
                counts["503"] += 1
            else:
                counts["other"] += 1
            if b"connection: close" in lower:
                writer.close()
                writer = None
        except (OSError, asyncio.IncompleteReadError, ValueError):
            counts["errors"] += 1
            if writer is not None:
                writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def _load(port: int, request: bytes, conns: int, seconds: float) -> dict[str, Any]:
    counts = {"ok": 0, "503": 0, "other": 0, "errors": 0}
    ok_ms: list[float] = []
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    started = time.perf_counter()
    await asyncio.gather(*(_connection(port, request, until, counts, ok_ms) for _ in range(conns)))
    wall = time.perf_counter() - started
    ok_ms.sort()
    pick = lambda q: ok_ms[min(len(ok_ms) - 1, int(q * len(ok_ms)))] if ok_ms else float("nan")  # noqa: E731
    return {
        "ok_rps": counts["ok"] / wall,
        "n503": counts["503"],
        "other": counts["other"] + counts["errors"],
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
    }


def load(port: int, payload: bytes, conns: int, seconds: float) -> dict[str, Any]:
    request = (
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
    )
    try:
        import uvloop

        return uvloop.run(_load(port, request, conns, seconds))
    except ImportError:
        return asyncio.run(_load(port, request, conns, seconds))


# -- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, help="NAME=SRC, repeatable")
    parser.add_argument("--connections", default="4,64,200")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--pin",
        action="store_true",
        help="servers on the first allowed core, the client on the next",
    )
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build is not None:
        build(args.build)
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4096)), hard))
    trees = dict(t.split("=", 1) for t in args.tree)
    conns = [int(c) for c in args.connections.split(",")]
    payload = body()
    cores = sorted(os.sched_getaffinity(0))
    server_core = cores[0] if args.pin and len(cores) > 1 else None
    print(f"# {ROWS}-row /predict body: {len(payload):,} bytes", file=sys.stderr)
    results: dict[str, dict[int, list[dict[str, Any]]]] = {t: {c: [] for c in conns} for t in trees}
    with tempfile.TemporaryDirectory(prefix="mlcycle-overload-") as tmp:
        work = Path(tmp)
        servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        try:
            for name, src in trees.items():
                env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())}
                subprocess.run(
                    [sys.executable, __file__, "--tree", "x=x", "--build", str(work / name)],
                    env=env,
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                servers[name] = start(
                    Path(src), work / name / "proj", payload, work / f"{name}.log", server_core
                )
                print(f"# {name}: serving from {src}", file=sys.stderr)
            if server_core is not None:
                os.sched_setaffinity(0, set(cores[1:]))
            for repeat in range(args.repeats):
                for c in conns:
                    order = list(trees) if repeat % 2 == 0 else list(reversed(trees))
                    for name in order:
                        process, port = servers[name]
                        load(port, payload, c, args.warmup)
                        cpu, started = cpu_seconds(process.pid), time.perf_counter()
                        point = load(port, payload, c, args.duration)
                        point["server_cpu"] = (cpu_seconds(process.pid) - cpu) / (
                            time.perf_counter() - started
                        )
                        # robust to other processes taking the server's core
                        point["ok_per_cpu_s"] = point["ok_rps"] / max(point["server_cpu"], 1e-9)
                        results[name][c].append(point)
                        print(
                            f"  {name:>8} c={c:<4} ok {point['ok_rps']:7.1f}/s  "
                            f"503 {point['n503']:>7}  other {point['other']:>4}  "
                            f"p50 {point['p50_ms']:7.1f} ms  p99 {point['p99_ms']:7.1f} ms  "
                            f"server CPU {point['server_cpu']:.2f}",
                            file=sys.stderr,
                        )
        finally:
            for process, _ in servers.values():
                stop(process)
    summary: dict[str, Any] = {}
    print(
        "\n| tree | connections | successful req/s | 503s | other | p50 ms | p99 ms "
        "| server CPU | successful per CPU-s |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    for name in trees:
        summary[name] = {}
        for c in conns:
            points = results[name][c]
            med = {k: statistics.median(p[k] for p in points) for k in points[0]}
            summary[name][c] = med
            print(
                f"| {name} | {c} | {med['ok_rps']:.1f} | {med['n503']:,.0f} | "
                f"{med['other']:.0f} | {med['p50_ms']:.1f} | {med['p99_ms']:.1f} | "
                f"{med['server_cpu']:.2f} | {med['ok_per_cpu_s']:.1f} |"
            )
    for name in trees:
        low, high = summary[name][conns[0]]["ok_rps"], summary[name][conns[-1]]["ok_rps"]
        print(
            f"{name}: successful req/s at {conns[-1]} connections / at {conns[0]}: {high / low:.0%}"
        )
        eff = summary[name][conns[-1]]["ok_per_cpu_s"] / summary[name][conns[0]]["ok_per_cpu_s"]
        print(
            f"{name}: successful answers per server CPU-second at {conns[-1]} connections / "
            f"at {conns[0]}: {eff:.0%}"
        )
    print(json.dumps({"bench": "overload", "rows": ROWS, "results": summary}))


if __name__ == "__main__":
    main()
