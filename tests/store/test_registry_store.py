"""Conformance of the registry tables: every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from mlcycle.errors import ConflictError, InvalidNameError, NotFoundError
from mlcycle.store import (
    ALIAS_RULE,
    HEAD_REVISION,
    MAX_NAME_LENGTH,
    NAME_RULE,
    MetadataStore,
    current_revision,
    parse_model_ref,
    upgrade,
)
from mlcycle.store._engine import make_engine
from tests.store import _workers


@pytest.fixture
def store(store_url: str) -> Iterator[MetadataStore]:
    s = MetadataStore(store_url)
    yield s
    s.close()


def _register(store: MetadataStore, name: str = "fraud", **extra: Any) -> int:
    sha = _workers.fake_sha(f"{name}-{uuid.uuid4()}")
    store.record_artifact(sha, 3, f"mem://{sha}", "application/onnx")
    record = store.registry.add_version(
        name,
        run_id=None,
        task="binary",
        metrics={"test": {"accuracy": 0.9}},
        lineage={"dataset": "d@1"},
        signature={"inputs": []},
        files={"model.onnx": sha},
        actor="alice",
        **extra,
    )
    return record.version


def test_versions_are_numbered_per_model(store: MetadataStore) -> None:
    assert [_register(store) for _ in range(3)] == [1, 2, 3]
    assert _register(store, "churn") == 1
    latest = store.registry.get("fraud")
    assert latest.ref == "fraud@3" and latest.files["model.onnx"]
    assert store.registry.get("fraud@2").version == 2
    listed = {m.name: (m.versions, m.latest) for m in store.registry.list_models()}
    assert listed == {"churn": (1, 1), "fraud": (3, 3)}


def test_unknown_models_versions_and_aliases_are_named(store: MetadataStore) -> None:
    _register(store)
    with pytest.raises(NotFoundError, match="model 'frad' is not registered; registered: fraud"):
        store.registry.get("frad")
    with pytest.raises(NotFoundError, match="model 'fraud' has no version 9"):
        store.registry.get("fraud@9")
    with pytest.raises(
        NotFoundError, match=r"model 'fraud' has no alias @champion \(aliases: none\)"
    ):
        store.registry.get("fraud@champion")


def test_alias_moves_are_recorded_with_who_from_to_and_why(store: MetadataStore) -> None:
    for _ in range(2):
        _register(store)
    assert store.registry.set_alias("fraud", 1, "champion", actor="alice", reason="first") is None
    assert store.registry.set_alias("fraud", 2, "champion", actor="bob", reason="better auc") == 1
    assert store.registry.get("fraud@champion").version == 2
    assert store.registry.get("fraud@2").aliases == ("champion",)
    moves = store.registry.history("fraud", "champion")
    assert [(e.actor, e.details["from"], e.details["to"], e.reason) for e in moves] == [
        ("alice", None, 1, "first"),
        ("bob", 1, 2, "better auc"),
    ]
    with pytest.raises(InvalidNameError, match="alias 'latest'"):
        store.registry.set_alias("fraud", 1, "latest", actor="x")


# A newline after the name (re.match's $ took it), a path out of the log folder, a hidden
# file, a path separator, nothing, too long for the column, not ASCII, a space.
BAD_NAMES = [
    "nl\n",
    "..",
    ".hidden",
    "a/b",
    "",
    "x" * (MAX_NAME_LENGTH + 1),
    "x" * 300,
    "naïve",
    "a b",
]


def _refused(caught: pytest.ExceptionInfo[InvalidNameError], what: str, bad: str) -> None:
    message = str(caught.value)
    assert message.startswith(f"{what} {repr(bad)[:MAX_NAME_LENGTH]}"), message
    assert message.endswith(f": expected {NAME_RULE}"), message


def test_one_name_rule_for_models_datasets_and_references(store: MetadataStore) -> None:
    longest = "m" * MAX_NAME_LENGTH
    assert _register(store, longest) == 1  # at the limit: taken by both backends
    assert store.registry.get(f"{longest}@1").name == longest
    sha = _workers.fake_sha("data")
    store.record_artifact(sha, 3, f"mem://{sha}", "application/vnd.apache.parquet")
    for bad in BAD_NAMES:
        with pytest.raises(InvalidNameError) as caught:
            _register(store, bad)
        _refused(caught, "model name", bad)
        with pytest.raises(InvalidNameError) as caught:
            parse_model_ref(f"{bad}@1")
        _refused(caught, "model name", bad)
        with pytest.raises(InvalidNameError) as caught:
            _workers.add_version(store, bad, sha, actor="x")
        _refused(caught, "dataset name", bad)
    assert [m.name for m in store.registry.list_models()] == [longest]
    assert store.list_datasets() == []


def test_one_alias_rule(store: MetadataStore) -> None:
    _register(store)
    longest = "c" * MAX_NAME_LENGTH
    assert store.registry.set_alias("fraud", 1, longest, actor="x") is None
    assert store.registry.get(f"fraud@{longest}").version == 1
    for bad in ["latest", "Latest", "12", "champion\n", "c" * (MAX_NAME_LENGTH + 1), "-x", "a.b"]:
        with pytest.raises(InvalidNameError) as caught:
            store.registry.set_alias("fraud", 1, bad, actor="x")
        assert str(caught.value) == f"alias {bad!r}: expected {ALIAS_RULE}"
        if bad not in ("latest", "12"):  # NAME@latest and NAME@12 are references already
            with pytest.raises(InvalidNameError, match="expected a letter, then"):
                parse_model_ref(f"fraud@{bad}")
    assert store.registry.get("fraud@1").aliases == (longest,)


def test_a_version_is_registered_with_its_alias_in_one_step(store: MetadataStore) -> None:
    assert _register(store, alias="champion", reason="first") == 1
    assert store.registry.get("fraud@champion").aliases == ("champion",)
    with pytest.raises(InvalidNameError, match="alias 'latest'"):
        _register(store, alias="latest")
    assert [v.version for v in store.registry.list_versions("fraud")] == [1]
    moves = store.registry.history("fraud", "champion")
    assert [(e.details["from"], e.details["to"], e.reason) for e in moves] == [(None, 1, "first")]


def test_rollback_walks_back_through_the_alias_history(store: MetadataStore) -> None:
    for _ in range(3):
        _register(store)
    for version in (1, 2, 3):
        store.registry.set_alias("fraud", version, "champion", actor="ci")
    target = store.registry.rollback_target("fraud", "champion")
    assert target == 2
    store.registry.set_alias("fraud", target, "champion", actor="ops", rollback=True)
    assert store.registry.rollback_target("fraud", "champion") == 1
    store.registry.set_alias("fraud", 1, "champion", actor="ops", rollback=True)
    with pytest.raises(ConflictError, match="no earlier version to roll back to"):
        store.registry.rollback_target("fraud", "champion")


def test_a_version_an_alias_points_to_cannot_be_deleted(store: MetadataStore) -> None:
    for _ in range(2):
        _register(store)
    store.registry.set_alias("fraud", 2, "champion", actor="ci")
    with pytest.raises(
        ConflictError, match=r"version 2 of model 'fraud' is @champion: move the alias"
    ):
        store.registry.delete_version("fraud", 2, actor="x", reason=None)
    store.registry.delete_version("fraud", 1, actor="x", reason="bad data")
    assert [v.version for v in store.registry.list_versions("fraud")] == [2]
    assert _register(store) == 3  # numbers are never reused
    actions = [e.action for e in store.registry.history("fraud")]
    assert actions.count("model.deleted") == 1


def test_version_numbers_are_never_reused_even_after_deleting_the_latest(
    store: MetadataStore,
) -> None:
    assert [_register(store) for _ in range(2)] == [1, 2]
    store.registry.delete_version("fraud", 2, actor="x", reason="bad weights")
    assert (
        _register(store) == 3
    )  # not 2 again: a server or a log holding "fraud@2" means the old one
    for version in (3, 1):
        store.registry.delete_version("fraud", version, actor="x", reason=None)
    assert store.registry.list_versions("fraud") == []
    assert _register(store) == 4
    listed = {m.name: (m.versions, m.latest) for m in store.registry.list_models()}
    assert listed == {"fraud": (1, 4)}


def test_a_registry_made_before_0004_keeps_the_numbers_it_deleted_retired(store_url: str) -> None:
    engine = make_engine(store_url)
    upgrade(engine, "0003")
    # What mlcycle at revision 0003 wrote: fraud@3 was registered, then deleted (only its
    # events remain); churn's versions have no events; 'empty' lost its only version.
    with engine.begin() as connection:
        for id_, name in ((1, "fraud"), (2, "churn"), (3, "empty")):
            connection.execute(
                text(
                    "INSERT INTO registered_models (id, name, created_at, created_by)"
                    " VALUES (:id, :name, CURRENT_TIMESTAMP, 'someone')"
                ),
                {"id": id_, "name": name},
            )
        for model_id, version in ((1, 1), (1, 2), (2, 1), (2, 5)):
            connection.execute(
                text(
                    "INSERT INTO model_versions (model_id, version, task, metrics, lineage,"
                    " signature, created_at, created_by) VALUES (:m, :v, 'binary', '{}', '{}',"
                    " '{}', CURRENT_TIMESTAMP, 'someone')"
                ),
                {"m": model_id, "v": version},
            )
        for action, name, version in (
            ("model.registered", "fraud", 1),
            ("model.registered", "fraud", 2),
            ("model.registered", "fraud", 3),
            ("model.deleted", "fraud", 3),
            ("model.registered", "empty", 1),
            ("model.deleted", "empty", 1),
            ("run.created", "fraud", 9),  # not a model event: ignored
        ):
            connection.execute(
                text(
                    "INSERT INTO events (at, actor, action, entity_type, entity_id, details)"
                    " VALUES (CURRENT_TIMESTAMP, 'someone', :action, :type, :name, :details)"
                ),
                {
                    "action": action,
                    "type": "run" if action.startswith("run") else "model",
                    "name": name,
                    "details": f'{{"version": {version}}}',
                },
            )
    engine.dispose()

    store = MetadataStore(store_url)
    try:
        assert current_revision(store.engine) == HEAD_REVISION
        assert [_register(store, name) for name in ("fraud", "churn", "empty", "new")] == [
            4,
            6,
            2,
            1,
        ]
    finally:
        store.close()


@pytest.mark.slow
def test_two_processes_registering_one_name_get_distinct_numbers(store_url: str) -> None:
    MetadataStore(store_url).close()
    assert _workers.run_at_once(_workers.register_versions, store_url) == [0, 0]
    store = MetadataStore(store_url)
    try:
        versions = store.registry.list_versions("fraud")
        n = 2 * _workers.REGISTRATIONS_PER_WORKER
        assert [v.version for v in versions] == list(range(1, n + 1))
        assert sorted((v.metrics["worker"], v.metrics["i"]) for v in versions) == sorted(
            (w, i) for w in range(2) for i in range(_workers.REGISTRATIONS_PER_WORKER)
        )
    finally:
        store.close()


def _artifact(store: MetadataStore, what: str) -> str:
    sha = _workers.fake_sha(f"{what}-{uuid.uuid4()}")
    store.record_artifact(sha, 3, f"mem://{sha}", "application/json")
    return sha


def test_audits_are_kept_per_version_newest_first_and_rewrite_only_the_card(
    store: MetadataStore,
) -> None:
    _register(store)
    version = store.registry.get("fraud@1")
    model_file = version.files["model.onnx"]
    first_doc, second_doc = _artifact(store, "doc1"), _artifact(store, "doc2")
    card = {"card.md": _artifact(store, "md"), "card.html": _artifact(store, "html")}
    store.registry.add_audit(
        version,
        kinds=("fairness",),
        document_sha256=first_doc,
        report_sha256=None,
        summary={"fairness": {"DI": 0.7}},
        card=card,
        actor="alice",
    )
    second = store.registry.add_audit(
        version,
        kinds=("explain", "robustness"),
        document_sha256=second_doc,
        report_sha256=_artifact(store, "report"),
        summary={"robustness": {"pgd": 0.5}},
        card={"card.md": _artifact(store, "md2")},
        actor="bob",
    )
    audits = store.registry.audits(version)
    assert [a.document_sha256 for a in audits] == [second_doc, first_doc]
    assert audits[0] == second and second.kinds == ("explain", "robustness")
    assert audits[1].summary == {"fairness": {"DI": 0.7}} and audits[1].created_by == "alice"
    again = store.registry.get("fraud@1")
    assert again.files["model.onnx"] == model_file  # the model itself never changes
    assert (
        again.files["card.md"] != card["card.md"] and again.files["card.html"] == card["card.html"]
    )
    events = [e for e in store.registry.history("fraud") if e.action == "model.audited"]
    assert [(e.actor, e.details["kinds"]) for e in events] == [
        ("alice", ["fairness"]),
        ("bob", ["explain", "robustness"]),
    ]
    _register(store)  # a second version has audits of its own: none yet
    assert store.registry.audits(store.registry.get("fraud@2")) == []
    store.registry.delete_version("fraud", 1, actor="alice", reason="gone")
    assert store.registry.audits(version) == []
