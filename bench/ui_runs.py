"""The dashboard's runs page at 10,000 runs with 100 epochs each: first page and filters over HTTP.

A project whose store holds ``--runs`` runs (10 experiments, a few tags,
test metrics in each summary) with ``--epochs`` epochs of two logged
metrics each, written in bulk straight into the store's tables (the same
rows the run API writes, without 10,000 transactions). Then the dashboard
(``mlcycle.ui.create_app``) is served on loopback and each page below is
fetched over HTTP ``--repeats`` times; the median and the slowest are
reported. The page reads one page of runs from SQL: neither all runs nor
their epochs.

    .venv/bin/python bench/ui_runs.py                       # SQLite
    .venv/bin/python bench/ui_runs.py --store postgresql    # the server at 127.0.0.1:5432
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mlcycle import Project
from mlcycle.serve import serve_in_thread
from mlcycle.store import _tables as t
from mlcycle.ui import create_app

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PAGES = {
    "first page": "/runs",
    "filter: test.accuracy>0.9": "/runs?where=test.accuracy%3E0.9",
    "filter: experiment + status + tag": "/runs?experiment=exp-3&status=finished&tag=team%3Db",
    "filter: logged val_loss<0.2, sorted by it": "/runs?where=val_loss%3C0.2&sort=val_loss&order=asc",
    "sort: test.accuracy, page 100": "/runs?sort=test.accuracy&page=100",
    "a run's page": "/runs/{run}",
    "a run's curves (JSON, 100 epochs)": "/api/runs/{run}/metrics",
}


def fill(project: Project, runs: int, epochs: int, seed: int = 0) -> str:
    """Write the runs and their epochs; the id of one of them."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    engine = project.store.engine
    chosen = ""
    batch = 500
    for first in range(0, runs, batch):
        run_rows, tag_rows, metric_rows = [], [], []
        for i in range(first, min(first + batch, runs)):
            run_id = uuid.UUID(int=rng.getrandbits(128)).hex
            chosen = chosen or run_id
            accuracy = rng.uniform(0.5, 1.0)
            created = start + timedelta(minutes=i)
            run_rows.append(
                {
                    "id": run_id,
                    "name": f"run-{i}",
                    "experiment": f"exp-{i % 10}",
                    "status": "failed" if i % 17 == 0 else "finished",
                    "params": {"train": {"lr": rng.choice([1e-3, 3e-3, 1e-2]), "seed": i}},
                    "summary": {"test": {"accuracy": accuracy, "f1_macro": accuracy - 0.02}},
                    "dataset_version_id": None,
                    "parent_run_id": None,
                    "created_by": "bench",
                    "created_at": created,
                    "started_at": created,
                    "ended_at": created + timedelta(seconds=rng.uniform(5, 500)),
                }
            )
            tag_rows += [
                {"run_id": run_id, "key": "team", "value": "ab"[i % 2]},
                {"run_id": run_id, "key": "model", "value": rng.choice(["mlp", "cnn", "linear"])},
            ]
            for epoch in range(epochs):
                loss = 1.0 / (1 + epoch * accuracy / 10)
                metric_rows += [
                    {
                        "run_id": run_id,
                        "key": "val_loss",
                        "step": epoch,
                        "value": loss,
                        "logged_at": created,
                    },
                    {
                        "run_id": run_id,
                        "key": "val_accuracy",
                        "step": epoch,
                        "value": accuracy * (1 - loss / 4),
                        "logged_at": created,
                    },
                ]
        with engine.begin() as connection:
            connection.execute(insert(t.Run), run_rows)
            connection.execute(insert(t.RunTag), tag_rows)
            connection.execute(insert(t.Metric), metric_rows)
        print(f"  {min(first + batch, runs)} runs written", end="\r", flush=True)
    print()
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("ANALYZE"))
        else:
            connection.execute(text("ANALYZE"))
    return chosen


def measure(url: str, run_id: str, repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(repeats):
            for label, path in PAGES.items():
                began = time.perf_counter()
                response = client.get(path.format(run=run_id))
                times.setdefault(label, []).append(time.perf_counter() - began)
                if response.status_code != 200:
                    raise SystemExit(f"{path}: {response.status_code} {response.text[:300]}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    schema = None
    admin = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.store == "postgresql":
            schema = f"bench_ui_{uuid.uuid4().hex[:10]}"
            admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'CREATE SCHEMA "{schema}"'))
            os.environ["MLCYCLE_STORE_URL"] = f"{PG_ADMIN}?options=-csearch_path%3D{schema}"
        try:
            project = Project.init(Path(tmp) / "bench", name="bench")
            began = time.perf_counter()
            run_id = fill(project, args.runs, args.epochs)
            print(
                f"{args.runs} runs x {args.epochs} epochs x 2 metrics in {args.store}: "
                f"written in {time.perf_counter() - began:.0f} s"
            )
            with serve_in_thread(create_app(project)) as url:
                times = measure(url, run_id, args.repeats)
            project.close()
        finally:
            if admin is not None:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.store}")
    print(f"| page | median | slowest of {args.repeats} |")
    print("| --- | ---: | ---: |")
    for label, values in times.items():
        print(
            f"| {label} | {statistics.median(values) * 1000:.0f} ms | {max(values) * 1000:.0f} ms |"
        )


if __name__ == "__main__":
    main()
