"""One page of runs from SQL, the same on SQLite and PostgreSQL: filters, sorts, counts, slices."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlcycle.errors import SpecError
from mlcycle.store import RUN_SORTS, MetadataStore

# name -> (experiment, test accuracy or None, last val_loss or None, tags)
RUNS = {
    "a": ("x", 0.50, 0.9, {"team": "red", "model": "mlp"}),
    "b": ("x", 0.90, 0.3, {"team": "blue", "model": "cnn"}),
    "c": ("y", 0.70, None, {"team": "blue", "model": "linear"}),
    "d": ("y", None, 0.1, {"team": "red"}),
}


@pytest.fixture
def store(store_url: str) -> Iterator[MetadataStore]:
    store = MetadataStore(store_url)
    for name, (experiment, accuracy, loss, tags) in RUNS.items():
        run = store.create_run(name=name, params={}, actor="me", experiment=experiment, tags=tags)
        if loss is not None:  # the last step counts, not the lowest value
            store.log_metrics(run.id, [("val_loss", 0, 0.05), ("val_loss", 2, loss)])
        if accuracy is not None:
            store.update_summary(run.id, {"test": {"accuracy": accuracy}})
        store.finish_run(run.id, "failed" if name == "c" else "finished", actor="me")
    yield store
    store.close()


def names(store: MetadataStore, **query: object) -> list[str]:
    return [row.run.name for row in store.run_page(**query).rows]  # type: ignore[arg-type]


def test_filters_in_sql(store: MetadataStore) -> None:
    assert names(store, experiment="y", sort="name", descending=False) == ["c", "d"]
    assert names(store, status="failed") == ["c"]
    assert names(store, tags={"team": "blue"}, sort="name", descending=False) == ["b", "c"]
    assert names(store, where=[("test.accuracy", ">=", 0.7)], sort="name") == ["c", "b"]
    assert names(store, where=[("val_loss", "<", 0.5)], sort="name") == ["d", "b"]
    both = [("val_loss", "<", 0.5), ("test.accuracy", ">", 0.0)]
    assert names(store, where=both) == ["b"]
    with pytest.raises(SpecError, match="operator '~'"):
        store.run_page(where=[("val_loss", "~", 1.0)])


@pytest.mark.parametrize(
    ("sort", "descending", "expected"),
    [
        ("test.accuracy", True, ["b", "c", "a", "d"]),  # no value: last
        ("test.accuracy", False, ["a", "c", "b", "d"]),
        ("val_loss", False, ["d", "b", "a", "c"]),
        ("name", True, ["d", "c", "b", "a"]),
        ("started", False, ["a", "b", "c", "d"]),
        ("model", False, ["b", "c", "a", "d"]),
        ("experiment", False, ["b", "a", "d", "c"]),  # ties: newest first
    ],
)
def test_sorts(store: MetadataStore, sort: str, descending: bool, expected: list[str]) -> None:
    assert names(store, sort=sort, descending=descending) == expected


def test_every_named_sort_runs(store: MetadataStore) -> None:
    for sort in RUN_SORTS:
        assert store.run_page(sort=sort).total == 4


def test_pages_are_slices_with_the_total(store: MetadataStore) -> None:
    pages = [store.run_page(sort="name", descending=False, offset=o, limit=3) for o in (0, 3)]
    assert [[r.run.name for r in p.rows] for p in pages] == [["a", "b", "c"], ["d"]]
    assert {p.total for p in pages} == {4}
    beyond = store.run_page(where=[("val_loss", "<", 0.5)], sort="val_loss", offset=10)
    assert (beyond.rows, beyond.total) == ([], 2)
    row = pages[0].rows[0]
    assert row.model == "mlp" and row.run.tags == {"team": "red", "model": "mlp"}


def test_new_metric_points_after_a_step(store: MetadataStore) -> None:
    run = store.run_page(sort="name", descending=False).rows[0].run
    assert store.last_metric_points(run.id) == [("val_loss", 0, 0.05), ("val_loss", 2, 0.9)]
    assert store.last_metric_points(run.id, after=0) == [("val_loss", 2, 0.9)]
