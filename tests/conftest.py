"""Fixtures shared by the whole suite: store URLs for SQLite and the real PostgreSQL, full disks."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, text

from tests._disk import FullDisk

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One worker per core (scripts/test): a worker's PyTorch and OpenMP threads stay on
    # one core each instead of every worker spinning threads on every core (subprocesses
    # the tests start inherit it).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

PG_ADMIN_URL = os.environ.get(
    "MLCYCLE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a schema of this test's own, dropped afterwards.

    A study in a project on it also makes ``<schema>_optuna``, dropped too.
    """
    schema = f"mlcycle_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # pragma: no cover - the server is part of the test environment
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is required for the store tests: {exc}")
    try:
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            # A study's Optuna tables live beside the store's (mlcycle.tune._storage).
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}_optuna" CASCADE'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlcycle.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[FullDisk]:
    """``pyarrow.parquet.write_table`` fails with ENOSPC while ``full_disk.full`` is set."""
    disk = FullDisk(pq.write_table)
    monkeypatch.setattr(pq, "write_table", disk.write_table)
    yield disk
    disk.full.clear()


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB filesystem (tmpfs), where this test may mount one (root on Linux)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)
