"""The conformance suite of metadata backends (:class:`mlcycle.store.MetadataBackend`).

Subclass :class:`MetadataBackendConformance`, name the registered backend and
give a fixture ``url`` of an empty database of it. The suite runs one fixed
sequence of store calls and compares what they return with the same
:data:`EXPECTED` record for every backend, so two backends that pass give the
same results for the same calls.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, text
from sqlalchemy.engine import make_url

from mlcycle.errors import ConflictError, NotFoundError
from mlcycle.plugins import METADATA_BACKENDS
from mlcycle.spec import parse_spec
from mlcycle.store import HEAD_REVISION, MetadataBackend, MetadataStore, current_revision

EXPECTED: dict[str, Any] = {
    "artifact": (hashlib.sha256(b"a").hexdigest(), 10, "text/plain"),
    "artifact_again": True,
    "versions": [(1, True), (2, True), (1, False)],
    "datasets": {"iris": (2, 2)},
    "unknown_dataset": "dataset 'irs' does not exist; known: iris",
    "run": ("finished", {"lr": 0.01, "layers": [64, 32]}, {"stage": "tuned"}, {"best": 0.8}),
    "metrics": [("acc", 0, 0.5), ("acc", 1, 0.8), ("loss", 0, 0.9), ("loss", 1, 0.4)],
    "finished_again": "ConflictError",
    "events": [
        ("dataset.version_added", "dataset", "iris@1"),
        ("dataset.version_added", "dataset", "iris@2"),
        ("run.created", "run"),
        ("run.finished", "run"),
        ("note", "model", "m"),
    ],
    "note_details": {"why": "a test", "n": [1, 2]},
    "by_action": [("dataset.version_added", "iris@2")],
}


def _sha(text_: str) -> str:
    return hashlib.sha256(text_.encode()).hexdigest()


def scenario(store: MetadataStore) -> dict[str, Any]:
    """One fixed sequence of calls, and what they returned, in plain values."""
    out: dict[str, Any] = {}
    art = store.record_artifact(_sha("a"), 10, "file:///a", "text/plain")
    out["artifact"] = (art.sha256, art.size, art.media_type)
    out["artifact_again"] = store.record_artifact(_sha("a"), 10, "file:///a", "text/plain") == art
    versions = []
    for content in ("a", "b", "a"):
        sha = store.record_artifact(_sha(content), 10, f"file:///{content}", "x").sha256
        record, created = store.add_dataset_version(
            "iris",
            fingerprint=_sha("fp" + content),
            artifact_sha256=sha,
            source="test",
            n_rows=3,
            schema={"columns": []},
            profile={"rows": 3},
            actor="tester",
        )
        versions.append((record.version, created))
    out["versions"] = versions
    out["datasets"] = {d.name: (d.versions, d.latest) for d in store.list_datasets()}
    try:
        store.get_dataset_version("irs")
    except NotFoundError as exc:
        out["unknown_dataset"] = str(exc)
    run = store.create_run(
        name="trial", params={"lr": 0.01, "layers": [64, 32]}, actor="me", tags={"stage": "x"}
    )
    store.log_metrics(run.id, [("loss", 0, 0.9), ("acc", 0, 0.5)])
    store.log_metrics(run.id, [("loss", 1, 0.4), ("acc", 1, 0.8)])
    store.set_tags(run.id, {"stage": "tuned"})
    done = store.finish_run(run.id, actor="me", summary={"best": 0.8})
    out["run"] = (done.status, done.params, done.tags, done.summary)
    out["metrics"] = sorted((p.key, p.step, p.value) for p in store.get_metrics(run.id))
    try:
        store.finish_run(run.id, actor="me")
    except ConflictError as exc:
        out["finished_again"] = type(exc).__name__
    store.record_event(
        "note", "model", "m", actor="me", reason="r", details={"why": "a test", "n": [1, 2]}
    )
    events = list(reversed(store.list_events()))
    out["events"] = [
        (e.action, e.entity_type)
        if e.entity_type == "run"
        else (e.action, e.entity_type, e.entity_id)
        for e in events
    ]
    out["note_details"] = events[-1].details
    out["by_action"] = [
        (e.action, e.entity_id)
        for e in store.list_events(entity_type="dataset", action="dataset.version_added", limit=1)
    ]
    return out


class MetadataBackendConformance:
    """What every metadata backend must do. Subclasses set :attr:`name` and a ``url`` fixture.

    ``exclusive_lease`` says whether the backend's lease keeps out other
    processes itself (a server shared by machines) or leaves it to the caller's
    file lock (a database on one machine).
    """

    name: ClassVar[str]
    exclusive_lease: ClassVar[bool] = False

    def backend(self) -> MetadataBackend:
        return METADATA_BACKENDS.get(self.name)()

    def test_is_registered_under_its_urls_backend_name(self, url: str) -> None:
        assert make_url(url).get_backend_name() == self.name
        assert isinstance(self.backend(), MetadataBackend)
        assert parse_spec({"store": {"url": url}}).store.url == url

    def test_same_results_for_the_same_calls(self, url: str) -> None:
        store = MetadataStore(url)
        try:
            assert store.backend == self.name
            assert scenario(store) == EXPECTED
            assert current_revision(store.engine) == HEAD_REVISION
        finally:
            store.close()

    def test_insert_ignore_keeps_the_first_row(self, url: str) -> None:
        engine = self.backend().create_engine(make_url(url))
        table = Table(
            "conformance_pairs",
            MetaData(),
            Column("key", Integer, primary_key=True),
            Column("value", String(10)),
        )
        try:
            table.create(engine)
            with engine.begin() as connection:
                for value in ("first", "second"):
                    connection.execute(
                        self.backend().insert_ignore(table, {"key": 1, "value": value})
                    )
            with engine.begin() as connection:
                assert connection.execute(select(table.c.value)).scalars().all() == ["first"]
                assert connection.execute(select(func.count()).select_from(table)).scalar() == 1
        finally:
            table.drop(engine)
            engine.dispose()

    def test_a_lease_is_held_once_and_released(self, url: str) -> None:
        first, second = (self.backend().create_engine(make_url(url)) for _ in range(2))
        try:
            with self.backend().lease(first, "conformance") as held:
                assert held
                with self.backend().lease(second, "conformance") as again:
                    assert again is not self.exclusive_lease
            with self.backend().lease(second, "conformance") as after:
                assert after
        finally:
            first.dispose()
            second.dispose()

    def test_migrations_take_the_lock_inside_a_transaction(self, url: str) -> None:
        engine = self.backend().create_engine(make_url(url))
        try:
            with engine.begin() as connection:
                self.backend().lock_migrations(connection)
                assert connection.execute(text("SELECT 1")).scalar() == 1
        finally:
            engine.dispose()


@pytest.fixture
def url() -> str:  # pragma: no cover - every subclass gives its own
    raise NotImplementedError
