"""Does explaining slow predicting? ``/predict`` latency alone and beside ``/explain`` load (issue 18).

One ``mlcycle serve`` of the serving bench's MLP (30 numeric inputs,
``bench/overload.py``). A client sends one-row ``/predict`` requests one
after another for ``--seconds`` and times each; the phases alternate, so
noise on the machine falls on both:

* **alone**: nothing else;
* **explained**: ``--explainers`` other clients meanwhile send ``/explain``
  requests of 16 rows and 64 permutations each (31 x 64 x 16 = 31,744 model
  evaluations per request) back to back, as fast as the server answers them
  (429s counted, not retried at once).

Reported: the median and 99th percentile of ``/predict`` latency in each
phase, their ratio (explained / alone), and how many explanations were
answered and turned away. The bar: explanations never slow predictions
(ratio of medians close to 1; on 2 cores the explaining thread still takes
CPU, at nice 10).

Example::

    .venv/bin/python bench/serve_explain.py --seconds 20 --rounds 3
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overload import N_FEATURES, build, start, stop


def _post(conn: http.client.HTTPConnection, path: str, payload: bytes) -> int:
    conn.request("POST", path, payload, {"content-type": "application/json"})
    reply = conn.getresponse()
    reply.read()
    return reply.status


def predict_latencies(port: int, payload: bytes, seconds: float) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        status = _post(conn, "/predict", payload)
        if status == 200:
            times.append((time.perf_counter() - started) * 1000)
    conn.close()
    return times


def explain_load(
    port: int, payload: bytes, stop_at: threading.Event, counts: dict[str, int]
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    while not stop_at.is_set():
        status = _post(conn, "/explain", payload)
        key = "answered" if status == 200 else f"http {status}"
        counts[key] = counts.get(key, 0) + 1
        if status == 429:
            stop_at.wait(0.05)
    conn.close()


def summary(times: list[float]) -> dict[str, Any]:
    ordered = sorted(times)
    return {
        "requests": len(times),
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--explainers", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    src = Path(__file__).resolve().parents[1] / "src"
    rng_row = {f"f{i}": 0.1 * i for i in range(N_FEATURES)}
    one = json.dumps({"records": [rng_row]}).encode()
    rows = [{f"f{i}": 0.1 * i + 0.01 * r for i in range(N_FEATURES)} for r in range(16)]
    heavy = json.dumps({"records": rows, "permutations": 64}).encode()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root)
        process, port = start(src, root / "proj", one, Path(tmp) / "server.log", None)
        try:
            phases: dict[str, list[float]] = {"alone": [], "explained": []}
            counts: dict[str, int] = {}
            for _ in range(args.rounds):
                phases["alone"] += predict_latencies(port, one, args.seconds)
                stop_at = threading.Event()
                workers = [
                    threading.Thread(target=explain_load, args=(port, heavy, stop_at, counts))
                    for _ in range(args.explainers)
                ]
                for w in workers:
                    w.start()
                time.sleep(1)  # the explainers are busy before timing starts
                phases["explained"] += predict_latencies(port, one, args.seconds)
                stop_at.set()
                for w in workers:
                    w.join(300)
        finally:
            stop(process)
    out = {name: summary(times) for name, times in phases.items()}
    out["ratio_p50"] = out["explained"]["p50_ms"] / out["alone"]["p50_ms"]
    out["ratio_p99"] = out["explained"]["p99_ms"] / out["alone"]["p99_ms"]
    out["explain_requests"] = counts
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
