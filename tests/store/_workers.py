"""Code run in child processes by the concurrency tests (importable under spawn)."""

from __future__ import annotations

import hashlib
import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mlcycle.store import MetadataStore

RUNS_PER_WORKER = 12
BATCHES = 5
POINTS_PER_BATCH = 10
VERSIONS_PER_WORKER = 6


def run_at_once(target: Any, url: str, processes: int = 2) -> list[int | None]:
    """Start ``target(url, worker, barrier)`` in fresh processes released together; exit codes."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    procs = [ctx.Process(target=target, args=(url, w, barrier)) for w in range(processes)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(240)
    return [p.exitcode for p in procs]


def fake_sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def add_version(store: MetadataStore, name: str, sha: str, *, actor: str = "tester") -> Any:
    """A one-row dataset version of ``name`` whose artifact and fingerprint are ``sha``."""
    return store.add_dataset_version(
        name,
        fingerprint=sha,
        artifact_sha256=sha,
        source="test",
        n_rows=1,
        schema={},
        profile={},
        actor=actor,
    )


def write_runs_and_versions(url: str, worker: int, barrier: Any) -> None:
    store = MetadataStore(url)
    barrier.wait(timeout=60)
    for i in range(RUNS_PER_WORKER):
        run = store.create_run(
            name=f"w{worker}-r{i}", params={"worker": worker, "i": i}, actor=f"worker{worker}"
        )
        for batch in range(BATCHES):
            store.log_metrics(
                run.id,
                [
                    ("loss", batch * POINTS_PER_BATCH + j, worker * 1000 + i + j / 100)
                    for j in range(POINTS_PER_BATCH)
                ],
            )
        store.set_tags(run.id, {"worker": str(worker)})
        store.finish_run(run.id, actor=f"worker{worker}", summary={"done": True})
        if i < VERSIONS_PER_WORKER:
            sha = fake_sha(f"{worker}-{i}")
            store.record_artifact(sha, 1, f"mem://{sha}", "application/octet-stream")
            add_version(store, "shared", sha, actor=f"worker{worker}")
    store.close()


def open_store(url: str, worker: int, barrier: Any) -> None:
    """Open (and so migrate) a fresh store at the same moment as another process."""
    barrier.wait(timeout=60)
    MetadataStore(url).close()


REGISTRATIONS_PER_WORKER = 8


def register_versions(url: str, worker: int, barrier: Any) -> None:
    store = MetadataStore(url)
    barrier.wait(timeout=60)
    for i in range(REGISTRATIONS_PER_WORKER):
        sha = fake_sha(f"model-{worker}-{i}")
        store.record_artifact(sha, 1, f"mem://{sha}", "application/onnx")
        store.registry.add_version(
            "fraud",
            run_id=None,
            task="binary",
            metrics={"worker": worker, "i": i},
            lineage={},
            signature={},
            files={"model.onnx": sha},
            actor=f"worker{worker}",
        )
    store.close()


def hold_write_lock(url: str, holding: Any, release: Any) -> None:
    """Open a write transaction (a written, uncommitted event) and keep it until ``release``."""
    store = MetadataStore(url)
    with store._write() as session:
        store._event(session, "lock.held", "test", "holder", actor="holder")
        session.flush()  # the INSERT runs: this process holds SQLite's write lock now
        holding.set()
        release.wait(120)
    store.close()


@contextmanager
def write_lock_held(url: str) -> Iterator[None]:
    """While inside, another process holds an open write transaction on the store."""
    ctx = multiprocessing.get_context("spawn")
    holding, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=hold_write_lock, args=(url, holding, release))
    holder.start()
    try:
        if not holding.wait(120):
            raise RuntimeError("the holder process never took the write lock")
        yield
    finally:
        release.set()
        holder.join(120)
    if holder.exitcode != 0:
        raise RuntimeError(f"the holder process exited with {holder.exitcode}")
