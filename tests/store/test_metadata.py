"""Conformance suite of the metadata store: every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from mlcycle.errors import ConflictError, NotFoundError, StoreError
from mlcycle.store import HEAD_REVISION, MetadataStore, current_revision, head_revision, upgrade
from mlcycle.store._engine import make_engine
from mlcycle.store._tables import Base
from tests.store import _workers


@pytest.fixture
def store(store_url: str) -> MetadataStore:
    s = MetadataStore(store_url)
    yield s
    s.close()


def _artifact(store: MetadataStore, text_: str) -> str:
    sha = _workers.fake_sha(text_)
    store.record_artifact(sha, 10, f"file:///{sha}", "application/vnd.apache.parquet")
    return sha


def _version(store: MetadataStore, name: str, content: str) -> tuple[int, bool]:
    sha = _artifact(store, content)
    record, created = store.add_dataset_version(
        name,
        fingerprint=_workers.fake_sha("fp" + content),
        artifact_sha256=sha,
        source="test",
        n_rows=3,
        schema={"columns": []},
        profile={"rows": 3},
        actor="tester",
    )
    return record.version, created


def test_the_record_families_make_up_the_same_public_surface() -> None:
    public = sorted(n for n in dir(MetadataStore) if not n.startswith("_"))
    assert public == [
        "add_dataset_version",
        "add_run_artifact",
        "backend",
        "close",
        "create_run",
        "delete_run",
        "finish_run",
        "get_artifact",
        "get_dataset_version",
        "get_dataset_version_by_id",
        "get_metrics",
        "get_run",
        "get_split",
        "heartbeat",
        "html_reports",
        "last_metric_points",
        "last_metric_values",
        "list_dataset_versions",
        "list_datasets",
        "list_events",
        "list_runs",
        "log_metrics",
        "metric_keys",
        "record_artifact",
        "record_event",
        "record_split",
        "resume_run",
        "run_page",
        "set_tags",
        "update_summary",
    ]


class TestSchema:
    def test_a_new_store_is_migrated_to_the_newest_revision(self, store: MetadataStore) -> None:
        assert head_revision() == HEAD_REVISION
        assert current_revision(store.engine) == HEAD_REVISION

    def test_orm_tables_match_the_migrations(self, store: MetadataStore) -> None:
        with store.engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "version_table": "mlcycle_alembic_version"}
            )
            diff = compare_metadata(context, Base.metadata)
        assert diff == []

    def test_a_store_made_by_an_older_version_upgrades_in_place(self, store_url: str) -> None:
        engine = make_engine(store_url)
        upgrade(engine, "0001")
        assert current_revision(engine) == "0001"
        # What mlcycle at revision 0001 wrote: tags inside the run summary.
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO runs (id, name, experiment, status, params, summary, created_by,"
                    " created_at) VALUES ('0123456789abcdef0123456789abcdef', 'old', 'default',"
                    ' \'finished\', \'{"lr": 0.1}\', \'{"tags": {"team": "fraud"}, "acc": 0.9}\','
                    " 'someone', CURRENT_TIMESTAMP)"
                )
            )
        engine.dispose()

        store = MetadataStore(store_url)
        try:
            assert current_revision(store.engine) == HEAD_REVISION
            run = store.get_run("0123456789abcdef0123456789abcdef")
            assert run.tags == {"team": "fraud"}
            assert run.summary == {"acc": 0.9}
            assert run.params == {"lr": 0.1}
        finally:
            store.close()

    def test_runs_recorded_before_heartbeats_upgrade_in_place(self, store_url: str) -> None:
        engine = make_engine(store_url)
        upgrade(engine, "0003")
        # What mlcycle at revision 0003 wrote: best_epoch counted from 0, no heartbeat.
        with engine.begin() as connection:
            for run_id, status, summary, params in (
                ("a" * 32, "finished", '{"best_epoch": 35, "epochs_run": 47}', '{"train": {}}'),
                ("b" * 32, "running", "{}", '{"train": {}}'),
                ("c" * 32, "running", "{}", '{"lr": 0.1}'),
                ("d" * 32, "finished", '{"best_epoch": -1, "epochs_run": 3}', '{"train": {}}'),
            ):
                connection.execute(
                    text(
                        "INSERT INTO runs (id, name, experiment, status, params, summary,"
                        " created_by, created_at, started_at) VALUES (:id, 'old', 'default',"
                        " :status, :params, :summary, 'someone', CURRENT_TIMESTAMP,"
                        " CURRENT_TIMESTAMP)"
                    ),
                    {"id": run_id, "status": status, "params": params, "summary": summary},
                )
        engine.dispose()

        store = MetadataStore(store_url)
        try:
            assert current_revision(store.engine) == HEAD_REVISION
            # One convention: epochs are counted from 1, as "best epoch 36 of 47" says.
            assert store.get_run("a" * 32).summary == {"best_epoch": 36, "epochs_run": 47}
            assert store.get_run("d" * 32).summary["best_epoch"] is None  # none was best
            # A training run left running by a dead process now has a heartbeat to go stale;
            # a run of another kind, which never beats, is left alone.
            stuck = store.get_run("b" * 32)
            assert stuck.heartbeat_at == stuck.started_at is not None
            assert store.get_run("c" * 32).heartbeat_at is None
        finally:
            store.close()

    def test_a_store_newer_than_this_mlcycle_is_refused(self, store: MetadataStore) -> None:
        with store.engine.begin() as connection:
            connection.execute(text("UPDATE mlcycle_alembic_version SET version_num = '9999'"))
        with pytest.raises(StoreError, match="newer than this mlcycle"):
            upgrade(store.engine)

    def test_two_processes_opening_a_new_store_migrate_it_once(self, store_url: str) -> None:
        assert _workers.run_at_once(_workers.open_store, store_url) == [0, 0]
        engine = make_engine(store_url)
        assert current_revision(engine) == HEAD_REVISION
        engine.dispose()


class TestDatasets:
    def test_versions_are_numbered_and_same_content_is_not_copied(
        self, store: MetadataStore
    ) -> None:
        assert _version(store, "iris", "a") == (1, True)
        assert _version(store, "iris", "b") == (2, True)
        assert _version(store, "iris", "a") == (1, False)
        assert _version(store, "wine", "a") == (1, True)
        assert [v.version for v in store.list_dataset_versions("iris")] == [1, 2]
        listed = {d.name: (d.versions, d.latest) for d in store.list_datasets()}
        assert listed == {"iris": (2, 2), "wine": (1, 1)}
        assert store.get_dataset_version("iris").version == 2
        assert store.get_dataset_version("iris", 1).profile == {"rows": 3}

    def test_unknown_dataset_and_version_name_what_exists(self, store: MetadataStore) -> None:
        _version(store, "iris", "a")
        with pytest.raises(NotFoundError, match=r"dataset 'irs' does not exist; known: iris"):
            store.get_dataset_version("irs")
        with pytest.raises(NotFoundError, match=r"dataset 'iris' has no version 7"):
            store.get_dataset_version("iris", 7)

    def test_adding_a_version_writes_an_event(self, store: MetadataStore) -> None:
        _version(store, "iris", "a")
        events = store.list_events(entity_type="dataset")
        assert [(e.action, e.entity_id, e.actor) for e in events] == [
            ("dataset.version_added", "iris@1", "tester")
        ]

    def test_a_split_is_recorded_once(self, store: MetadataStore) -> None:
        _version(store, "iris", "a")
        version = store.get_dataset_version("iris")
        sha1 = _artifact(store, "split1")
        sha2 = _artifact(store, "split2")
        first = store.record_split(
            version.id, "k", config={"seed": 0}, counts={"train": 2}, artifact_sha256=sha1
        )
        again = store.record_split(
            version.id, "k", config={"seed": 1}, counts={"train": 9}, artifact_sha256=sha2
        )
        assert again == first
        assert store.get_split(version.id).artifact_sha256 == sha1


class TestRuns:
    def test_params_metrics_tags_and_parent_are_kept(self, store: MetadataStore) -> None:
        parent = store.create_run(name="study", params={}, actor="me")
        run = store.create_run(
            name="trial",
            params={"lr": 0.01, "layers": [64, 32]},
            actor="me",
            parent_run_id=parent.id,
            tags={"stage": "tune"},
        )
        store.log_metrics(run.id, [("loss", 0, 0.9), ("acc", 0, 0.5)])
        store.log_metrics(run.id, [("loss", 1, 0.4), ("acc", 1, 0.8)])
        store.set_tags(run.id, {"stage": "tuned", "note": "x"})
        done = store.finish_run(run.id, actor="me", summary={"best_acc": 0.8})

        assert done.status == "finished"
        assert done.parent_run_id == parent.id
        assert done.params == {"lr": 0.01, "layers": [64, 32]}
        assert done.tags == {"stage": "tuned", "note": "x"}
        assert done.summary == {"best_acc": 0.8}
        assert done.ended_at is not None and done.duration_s is not None
        assert done.duration_s >= 0
        assert [(p.step, p.value) for p in store.get_metrics(run.id, "loss")] == [
            (0, 0.9),
            (1, 0.4),
        ]
        assert {p.key for p in store.get_metrics(run.id)} == {"loss", "acc"}
        assert [r.name for r in store.list_runs()] == ["trial", "study"]
        assert [r.name for r in store.list_runs(status="running")] == ["study"]

    def test_a_running_run_records_its_heartbeat(self, store: MetadataStore) -> None:
        run = store.create_run(name="r", params={}, actor="me")
        assert run.heartbeat_at is None and run.heartbeat_every_s is None
        store.heartbeat(run.id, every_s=2.5)
        first = store.get_run(run.id)
        assert first.heartbeat_at is not None and first.heartbeat_every_s == 2.5
        store.heartbeat(run.id, every_s=None)
        second = store.get_run(run.id)
        assert second.heartbeat_at is not None and second.heartbeat_at >= first.heartbeat_at
        assert second.heartbeat_every_s is None
        store.finish_run(run.id, actor="me")
        store.heartbeat(run.id, every_s=1.0)  # too late: ignored, not an error
        assert store.get_run(run.id).heartbeat_every_s is None
        failed = store.create_run(name="f", params={}, actor="me")
        store.heartbeat(failed.id, every_s=9.0)
        store.finish_run(failed.id, "failed", actor="me")
        resumed = store.resume_run(failed.id, actor="me")
        assert resumed.status == "running" and resumed.heartbeat_every_s is None
        assert resumed.heartbeat_at is not None and resumed.heartbeat_at >= second.heartbeat_at

    def test_a_finished_run_takes_no_more_metrics(self, store: MetadataStore) -> None:
        run = store.create_run(name="r", params={}, actor="me")
        store.finish_run(run.id, "failed", actor="me")
        with pytest.raises(ConflictError, match="is failed: it no longer takes changes"):
            store.log_metrics(run.id, [("loss", 2, 0.1)])

    def test_runs_are_found_by_a_unique_prefix(self, store: MetadataStore) -> None:
        run = store.create_run(name="r", params={}, actor="me")
        assert store.get_run(run.id[:8]).id == run.id
        with pytest.raises(NotFoundError, match="run 'nope' does not exist"):
            store.get_run("nope")

    def test_an_unknown_parent_is_refused(self, store: MetadataStore) -> None:
        with pytest.raises(NotFoundError, match="parent run 'ghost' does not exist"):
            store.create_run(name="r", params={}, actor="me", parent_run_id="ghost")


class TestEvents:
    def test_events_are_append_only(self, store: MetadataStore) -> None:
        store.record_event(
            "alias.moved", "model", "m", actor="me", reason="better", details={"to": 2}
        )
        event = store.list_events()[0]
        assert (event.action, event.reason, event.details) == ("alias.moved", "better", {"to": 2})
        for statement in ("UPDATE events SET actor = 'mallory'", "DELETE FROM events"):
            with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as c:
                c.execute(text(statement))
        assert store.list_events()[0].actor == "me"


class TestLocking:
    """Readers never wait for writers; a writer that must wait says what for."""

    def test_opening_and_reading_answer_while_another_process_writes(self, store_url: str) -> None:
        store = MetadataStore(store_url)
        store.create_run(name="before", params={}, actor="me")
        store.close()
        with _workers.write_lock_held(store_url):
            # Opening checks the schema revision (a read); listing reads: neither waits.
            reader = MetadataStore(store_url)
            try:
                assert [r.name for r in reader.list_runs()] == ["before"]
                assert reader.registry.list_models() == []
                assert reader.list_events(entity_type="test") == []  # not committed yet
            finally:
                reader.close()
        store = MetadataStore(store_url)
        assert [e.action for e in store.list_events(entity_type="test")] == ["lock.held"]
        store.close()

    def test_a_writer_waiting_for_the_write_lock_says_so_once(
        self, sqlite_url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="mlcycle.store")
        store = MetadataStore(sqlite_url)
        finished = threading.Event()
        failures: list[BaseException] = []

        def write() -> None:
            try:
                store.record_event("waited", "test", "writer", actor="me")
            except BaseException as exc:  # pragma: no cover - reported by the assert below
                failures.append(exc)
            finally:
                finished.set()

        def waiting() -> list[str]:
            return [r.getMessage() for r in caplog.records if "write lock" in r.getMessage()]

        try:
            with _workers.write_lock_held(sqlite_url):
                writer = threading.Thread(target=write)
                writer.start()
                deadline = time.monotonic() + 60
                while not waiting() and time.monotonic() < deadline and not finished.is_set():
                    time.sleep(0.02)
                assert not finished.is_set(), "the write went through while the lock was held"
                path = sqlite_url.removeprefix("sqlite:///")
                assert waiting() == [
                    f"waiting for the store's write lock on {path} (held by another process)…"
                ]
            writer.join(120)
            assert finished.is_set() and failures == []
            assert len(waiting()) == 1
            assert [e.action for e in store.list_events(entity_type="test")] == [
                "waited",
                "lock.held",
            ]
        finally:
            store.close()


@pytest.mark.slow
def test_two_processes_writing_at_once_lose_nothing(store_url: str) -> None:
    MetadataStore(store_url).close()  # migrated up front; the race is on the writes
    assert _workers.run_at_once(_workers.write_runs_and_versions, store_url) == [0, 0]

    store = MetadataStore(store_url)
    try:
        runs = store.list_runs(limit=1000)
        assert len(runs) == 2 * _workers.RUNS_PER_WORKER
        assert Counter(r.tags["worker"] for r in runs) == {
            "0": _workers.RUNS_PER_WORKER,
            "1": _workers.RUNS_PER_WORKER,
        }
        assert {r.status for r in runs} == {"finished"}
        points_per_run = _workers.BATCHES * _workers.POINTS_PER_BATCH
        for run in runs:
            worker, i = run.params["worker"], run.params["i"]
            values = [p.value for p in store.get_metrics(run.id, "loss")]
            expected = [
                worker * 1000 + i + j / 100
                for _ in range(_workers.BATCHES)
                for j in range(_workers.POINTS_PER_BATCH)
            ]
            assert len(values) == points_per_run
            assert sorted(values) == pytest.approx(sorted(expected))
        versions = store.list_dataset_versions("shared")
        assert [v.version for v in versions] == list(range(1, 2 * _workers.VERSIONS_PER_WORKER + 1))
        assert len({v.fingerprint for v in versions}) == len(versions)
        assert len(store.list_events(limit=10_000)) == (
            2 * _workers.RUNS_PER_WORKER * 2 + 2 * _workers.VERSIONS_PER_WORKER
        )
    finally:
        store.close()
