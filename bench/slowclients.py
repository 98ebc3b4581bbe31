"""``mlcycle serve`` with 3,000 slow connections open: its memory, a normal request's latency,
and how many of them it has closed after a while (issue 12).

Each source tree (``--tree NAME=SRC``, first on ``PYTHONPATH``) builds its own
project (the MLP of ``bench/serving.py``) and runs the real CLI, ``mlcycle
serve mlp@champion``, at its defaults. Then, per tree, in this order:

1. **idle**: the server's RSS (``VmRSS``), and the latency of ``--requests``
   normal one-row ``/predict`` requests, one after another, each on a new
   connection (as a client that finds its pool empty);
2. **slow**: ``--slow`` connections are opened and each sends half a request
   head (``POST /predict HTTP/1.1``, ``Host``, then ``Content-Le`` and
   nothing more: slowloris); with them open, the RSS and the normal requests'
   latency again (a failed normal request is counted, not timed);
3. **later**: ``--wait`` seconds after they were opened, how many of the
   slow connections the server still holds open, and its RSS.

The client's file-descriptor limit is raised with ``resource.setrlimit``.

Example::

    git worktree add /tmp/base 8d12ec1
    .venv/bin/python bench/slowclients.py --tree base=/tmp/base/src --tree this=src
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overload import N_FEATURES, start, stop

SLOW_HEAD = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise KeyError("VmRSS")


def normal_requests(port: int, body: bytes, count: int) -> dict[str, Any]:
    """``count`` one-row requests, each on a new connection: latency of the 200s, failures."""
    times: list[float] = []
    failed = 0
    for _ in range(count):
        started = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
            reply = conn.getresponse()
            reply.read()
            conn.close()
        except OSError:
            failed += 1
            continue
        if reply.status == 200:
            times.append((time.perf_counter() - started) * 1000)
        else:
            failed += 1
    times.sort()

    def pick(q: float) -> float:
        return times[min(len(times) - 1, int(q * len(times)))] if times else float("nan")

    return {"p50_ms": pick(0.5), "p99_ms": pick(0.99), "failed": failed}


def still_open(socks: list[socket.socket]) -> int:
    """How many of ``socks`` the server has not closed (EOF or reset not seen)."""
    count = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break  # closed by the server
        except BlockingIOError:
            count += 1  # nothing to read and no EOF: open
        except OSError:
            pass  # reset: closed
    return count


def measure(
    name: str, process: subprocess.Popen[bytes], port: int, args: argparse.Namespace
) -> dict[str, Any]:
    body = json.dumps({"records": [{f"f{i}": 0.1 * i for i in range(N_FEATURES)}]}).encode()
    normal_requests(port, body, 20)  # warm
    out: dict[str, Any] = {"idle_rss_mib": rss_mib(process.pid)}
    out["idle"] = normal_requests(port, body, args.requests)
    socks: list[socket.socket] = []
    opened_at = time.monotonic()
    refused = 0
    try:
        for _ in range(args.slow):
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.sendall(SLOW_HEAD)
            except OSError:
                refused += 1
                continue
            socks.append(sock)
        out["opened_s"] = time.monotonic() - opened_at
        out["slow_refused_at_connect"] = refused
        time.sleep(0.5)
        out["slow_rss_mib"] = rss_mib(process.pid)
        out["slow"] = normal_requests(port, body, args.requests)
        out["slow_rss_after_requests_mib"] = rss_mib(process.pid)
        out["open_with_slow"] = still_open(socks)
        time.sleep(max(0.0, opened_at + args.wait - time.monotonic()))
        out["open_after_wait"] = still_open(socks)
        out["later_rss_mib"] = rss_mib(process.pid)
    finally:
        for sock in socks:
            sock.close()
    print(f"  {name}: {json.dumps(out)}", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, help="NAME=SRC, repeatable")
    parser.add_argument("--slow", type=int, default=3000, help="slow connections to open")
    parser.add_argument("--requests", type=int, default=100, help="normal requests per phase")
    parser.add_argument("--wait", type=float, default=20.0, help="seconds before counting")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.slow + 512
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    trees = dict(t.split("=", 1) for t in args.tree)
    results: dict[str, Any] = {}
    one_row = json.dumps({"records": [{f"f{i}": 0.0 for i in range(N_FEATURES)}]}).encode()
    with tempfile.TemporaryDirectory(prefix="mlcycle-slowclients-") as tmp:
        work = Path(tmp)
        for name, src in trees.items():
            env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())}
            overload = str(Path(__file__).resolve().parent / "overload.py")
            subprocess.run(
                [sys.executable, overload, "--tree", "x=x", "--build", str(work / name)],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            process, port = start(
                Path(src), work / name / "proj", one_row, work / f"{name}.log", None
            )
            try:
                results[name] = measure(name, process, port, args)
            finally:
                stop(process)
    print(
        f"\n| tree | RSS idle MiB | RSS with {args.slow:,} slow MiB | normal p50/p99 ms idle "
        f"| normal p50/p99 ms with slow | normal failed with slow | slow open then "
        f"| slow still open after {args.wait:g} s | RSS then MiB |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    for name, r in results.items():
        print(
            f"| {name} | {r['idle_rss_mib']:.0f} | {r['slow_rss_mib']:.0f} | "
            f"{r['idle']['p50_ms']:.1f} / {r['idle']['p99_ms']:.1f} | "
            f"{r['slow']['p50_ms']:.1f} / {r['slow']['p99_ms']:.1f} | "
            f"{r['slow']['failed']} of {args.requests} | {r['open_with_slow']:,} | "
            f"{r['open_after_wait']:,} | "
            f"{r['later_rss_mib']:.0f} |"
        )
    print(json.dumps({"bench": "slowclients", "slow": args.slow, "results": results}))


if __name__ == "__main__":
    main()
