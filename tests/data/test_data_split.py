"""Splits: disjoint, covering, deterministic, stratified, and honest about time."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from mlcycle.data import ColumnSchema, Schema, SklearnSource, canonicalize, infer_schema, make_split
from mlcycle.errors import DataError
from mlcycle.spec import DatasetSpec, SplitSpec

PARTS = ("train", "validation", "test")


def load(name: str) -> tuple[pa.Table, Schema]:
    source = SklearnSource(name)
    raw = source.read()
    schema = infer_schema(raw, DatasetSpec(), source.hints)
    return canonicalize(raw, schema), schema


def check_partition(parts: dict[str, np.ndarray], n: int) -> None:
    assert tuple(parts) == PARTS
    for rows in parts.values():
        assert rows.dtype == np.int64
        assert np.all(np.diff(rows) > 0)  # sorted, no repeats
    everything = np.concatenate(list(parts.values()))
    assert len(everything) == n
    assert np.array_equal(np.sort(everything), np.arange(n))


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "iris", "digits"])
def test_stratified_split_keeps_class_shares_within_one_row(name: str) -> None:
    table, schema = load(name)
    spec = SplitSpec(validation=0.2, test=0.1, seed=3)
    parts = make_split(table, schema, spec)
    check_partition(parts, table.num_rows)
    labels = np.asarray(table.column("target").to_pylist(), dtype=object)
    shares = {"train": spec.train, "validation": spec.validation, "test": spec.test}
    for cls in np.unique(labels):
        total = int((labels == cls).sum())
        for part, rows in parts.items():
            got = int((labels[rows] == cls).sum())
            assert abs(got - total * shares[part]) <= 1, (cls, part, got, total)
    for part, rows in parts.items():
        assert abs(len(rows) - table.num_rows * shares[part]) <= 2


def test_split_is_deterministic_and_follows_the_seed() -> None:
    table, schema = load("breast_cancer")
    first = make_split(table, schema, SplitSpec(seed=11))
    again = make_split(table, schema, SplitSpec(seed=11))
    other = make_split(table, schema, SplitSpec(seed=12))
    for part in PARTS:
        assert np.array_equal(first[part], again[part])
    assert not np.array_equal(first["test"], other["test"])


def test_unstratified_and_regression_splits_have_exact_sizes() -> None:
    table, schema = load("diabetes")
    parts = make_split(table, schema, SplitSpec(validation=0.1, test=0.2))
    check_partition(parts, 442)
    assert [len(parts[p]) for p in PARTS] == [442 - 44 - 88, 44, 88]
    cancer, cancer_schema = load("breast_cancer")
    plain = make_split(cancer, cancer_schema, SplitSpec(stratify=False))
    assert [len(plain[p]) for p in PARTS] == [569 - 85 - 85, 85, 85]


def test_small_classes_appear_in_every_part() -> None:
    labels = ["big"] * 100 + ["five"] * 5 + ["three"] * 3
    table = pa.table({"x": np.arange(len(labels), dtype=float), "y": labels})
    schema = infer_schema(table, DatasetSpec())
    parts = make_split(table, schema, SplitSpec())
    check_partition(parts, len(labels))
    names = np.asarray(labels)
    for part, rows in parts.items():
        assert set(names[rows]) == {"big", "five", "three"}, part


def test_zero_share_leaves_a_part_empty() -> None:
    table, schema = load("iris")
    parts = make_split(table, schema, SplitSpec(validation=0.0, test=0.2))
    check_partition(parts, 150)
    assert len(parts["validation"]) == 0 and len(parts["test"]) == 30


def test_time_split_tests_on_the_newest_rows() -> None:
    n = 200
    rng = np.random.default_rng(5)
    start = datetime(2024, 1, 1)
    when = [start + timedelta(hours=int(h)) for h in rng.permutation(n)]
    table = pa.table({"when": pa.array(when, pa.timestamp("us")), "x": rng.normal(size=n)})
    schema = infer_schema(table, DatasetSpec())
    assert schema.timestamps == ("when",)
    parts = make_split(table, schema, SplitSpec(method="time", validation=0.1, test=0.25))
    check_partition(parts, n)
    hours = np.asarray(table.column("when").cast(pa.int64()).to_numpy())
    assert [len(parts[p]) for p in PARTS] == [130, 20, 50]
    assert hours[parts["train"]].max() < hours[parts["validation"]].min()
    assert hours[parts["validation"]].max() < hours[parts["test"]].min()
    newest = np.argsort(hours)[-50:]
    assert np.array_equal(np.sort(newest), parts["test"])


def test_time_split_keeps_ties_in_row_order() -> None:
    table = pa.table({"day": [3, 1, 1, 1, 1, 2, 2, 2, 3, 3]})
    schema = Schema((ColumnSchema("day", "numeric", "feature"),), None, None, None)
    split = SplitSpec(method="time", validation=0.2, test=0.2, time_column="day")
    parts = make_split(table, schema, split)
    # Sorted: days 1 (rows 1-4), 2 (rows 5-7), 3 (rows 0, 8, 9 in row order).
    assert parts["train"].tolist() == [1, 2, 3, 4, 5, 6]
    assert parts["validation"].tolist() == [0, 7]
    assert parts["test"].tolist() == [8, 9]


def test_time_split_refuses_missing_times() -> None:
    table = pa.table({"day": [1, None, 3, 4, 5]})
    schema = Schema((ColumnSchema("day", "numeric", "feature"),), None, None, None)
    split = SplitSpec(method="time", time_column="day")
    with pytest.raises(DataError, match=r"^split: time column 'day' is missing in 1 rows"):
        make_split(table, schema, split)
