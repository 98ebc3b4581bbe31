"""How long ``mlcycle serve`` takes to answer its first request, and what the process holds.

Two source trees are compared in the same run (``--baseline`` and
``--candidate``, each put first on ``PYTHONPATH``), arms interleaved
(A B A B ...), on one project trained and registered once. Each start runs
the real CLI, ``mlcycle serve NAME@champion``, as its own process and is
timed from ``Popen`` to the first ``200`` from ``/predict``; then a few more
requests are answered, one alias poll passes, and the process's resident
memory (``VmRSS``, and its peak ``VmHWM``) is read from ``/proc``, with which
of torch, scikit-learn, scipy and pandas have their native libraries mapped
in it. Medians are reported.

Example::

    .venv/bin/python bench/serve_start.py --baseline /path/to/main/src --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
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
HEAVY = ("torch", "sklearn", "scipy", "pandas")
RECORD = {"income": 52.0, "city": "paris", "member": True}


def build_project(root: Path) -> Path:
    """A project with ``loyalty@champion`` (the serving tests' mixed table), via the public API."""
    import numpy as np
    import pyarrow as pa

    from mlcycle import Project
    from mlcycle.registry import register
    from mlcycle.train import train

    rng = np.random.default_rng(0)
    n = 2000
    income = rng.normal(50.0, 10.0, n)
    city = rng.choice(["paris", "lyon", "nice"], n)
    member = rng.random(n) > 0.5
    score = (income - 50) / 10 + np.where(city == "paris", 1.0, -0.5) + np.where(member, 0.8, 0)
    table = pa.table(
        {"income": income, "city": city, "member": member, "y": np.where(score > 0.3, "yes", "no")}
    )
    with Project.init(root, name="bench") as project:
        project.datasets.add(table, name="mixed", target="y")
        run = train(project, data="mixed", overrides={"max_epochs": 5, "seed": 1}).run_id
        register(project, run, "loyalty", alias="champion")
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _predict(url: str) -> int:
    body = json.dumps({"records": [RECORD]}).encode()
    request = urllib.request.Request(f"{url}/predict", body, {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _mapped(pid: int) -> list[str]:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return [name for name in HEAVY if f"/site-packages/{name}/" in maps]


def start_once(src: Path, project: Path, timeout_s: float = 120.0) -> dict[str, Any]:
    """One ``mlcycle serve`` process from ``src``: seconds to first answer, RSS, heavy libraries."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-c",
        "from mlcycle.cli import main; main()",
        "serve",
        "loyalty@champion",
        "--port",
        str(port),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server from {src} exited: {process.stderr.read()!r}")  # type: ignore[union-attr]
            if time.perf_counter() - started > timeout_s:
                raise RuntimeError(f"the server from {src} did not answer in {timeout_s} s")
            try:
                if _predict(url) == 200:
                    break
            except OSError:
                pass
            time.sleep(0.01)
        first_s = time.perf_counter() - started
        assert all(_predict(url) == 200 for _ in range(50))
        time.sleep(2.5)  # one alias and traffic poll (every 2 s by default)
        return {
            "first_answer_s": first_s,
            "rss_mib": _status_kib(process.pid, "VmRSS") / 1024,
            "peak_rss_mib": _status_kib(process.pid, "VmHWM") / 1024,
            "heavy_mapped": _mapped(process.pid),
        }
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="a src/ folder to compare to")
    parser.add_argument("--candidate", type=Path, default=HERE.parent / "src")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    arms = {"baseline": args.baseline.resolve(), "candidate": args.candidate.resolve()}
    with tempfile.TemporaryDirectory(prefix="mlcycle-bench-serve-") as tmp:
        project = build_project(Path(tmp) / "proj")
        for src in arms.values():
            start_once(src, project)  # warm the file cache for both arms alike
        runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
        for _ in range(args.repeats):
            for arm, src in arms.items():
                runs[arm].append(start_once(src, project))
    summary: dict[str, Any] = {}
    print(
        f"{'arm':10} {'first answer s':>15} {'RSS MiB':>8} {'peak MiB':>9}  heavy libraries mapped"
    )
    for arm, results in runs.items():
        row = {
            "src": str(arms[arm]),
            "first_answer_s": statistics.median(r["first_answer_s"] for r in results),
            "rss_mib": statistics.median(r["rss_mib"] for r in results),
            "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in results),
            "heavy_mapped": sorted({m for r in results for m in r["heavy_mapped"]}),
            "runs": results,
        }
        summary[arm] = row
        print(
            f"{arm:10} {row['first_answer_s']:15.2f} {row['rss_mib']:8.0f} "
            f"{row['peak_rss_mib']:9.0f}  {', '.join(row['heavy_mapped']) or '-'}"
        )
    base, cand = summary["baseline"], summary["candidate"]
    summary["ratio"] = {
        "first_answer": cand["first_answer_s"] / base["first_answer_s"],
        "rss": cand["rss_mib"] / base["rss_mib"],
    }
    print(
        f"candidate / baseline: first answer {summary['ratio']['first_answer']:.2f}, "
        f"RSS {summary['ratio']['rss']:.2f}"
    )
    print(json.dumps({"bench": "serve_start", "repeats": args.repeats, **summary}))


if __name__ == "__main__":
    main()
