"""Every registered metadata backend runs the conformance suite; a new one is one class."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from mlcycle.errors import SpecError, StoreError
from mlcycle.plugins import METADATA_BACKENDS
from mlcycle.spec import parse_spec
from mlcycle.store import MetadataStore
from mlcycle.store._sqlite import SQLiteBackend
from tests.conformance.metadata_backends import EXPECTED, MetadataBackendConformance, scenario


class TestSQLite(MetadataBackendConformance):
    name = "sqlite"

    @pytest.fixture
    def url(self, sqlite_url: str) -> str:
        return sqlite_url


@pytest.mark.postgres
class TestPostgreSQL(MetadataBackendConformance):
    name = "postgresql"
    exclusive_lease = True

    @pytest.fixture
    def url(self, pg_url: str) -> str:
        return pg_url


def test_every_built_in_runs_the_suite() -> None:
    covered = {cls.name for cls in MetadataBackendConformance.__subclasses__()}
    assert set(METADATA_BACKENDS.names()) <= covered


class CountingSQLite(SQLiteBackend):
    """A toy backend, as a user would write it in one file: SQLite that counts its engines."""

    engines = 0

    def create_engine(self, url: URL) -> Engine:
        CountingSQLite.engines += 1
        return super().create_engine(url.set(drivername="sqlite"))


@pytest.fixture
def counting() -> Iterator[type[CountingSQLite]]:
    # A backend is found by the backend name of its URLs; this one takes over "sqlite".
    METADATA_BACKENDS.register("sqlite", replace=True)(CountingSQLite)
    yield CountingSQLite
    METADATA_BACKENDS.register("sqlite", replace=True)(SQLiteBackend)


@pytest.mark.usefixtures("counting")
class TestCountingSQLite(MetadataBackendConformance):
    """A new backend: its class and one registration line, and it passes the suite."""

    name = "sqlite"

    @pytest.fixture
    def url(self, sqlite_url: str) -> str:
        return sqlite_url

    def test_the_store_opens_it(self, tmp_path: Path) -> None:
        before = CountingSQLite.engines
        store = MetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
        assert scenario(store) == EXPECTED
        store.close()
        assert CountingSQLite.engines == before + 1


def test_an_unregistered_backend_is_refused_with_the_registered_names() -> None:
    with pytest.raises(
        SpecError, match=r"registered metadata backend \(postgresql://, sqlite://\)"
    ):
        parse_spec({"store": {"url": "mysql://db/x"}})
    with pytest.raises(
        StoreError, match=r"backend 'mysql' is not supported \(postgresql, sqlite\)"
    ):
        MetadataStore("mysql://db/x")
