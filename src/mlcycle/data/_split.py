"""Cutting a dataset version into train, validation and test rows.

A split is part of a dataset version: it is computed once, from the table and
the :class:`~mlcycle.spec.SplitSpec` alone, and stored, so every run and
every evaluation of that version sees the same test rows. Determinism matters
more than anything else here: the same table and spec give the same indices
on any machine (numpy's ``default_rng(seed)`` is stable across platforms).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from mlcycle.errors import DataError

if TYPE_CHECKING:
    from mlcycle.data._schema import Schema
    from mlcycle.spec import SplitSpec

__all__ = ["make_split"]

Indices = np.ndarray[Any, np.dtype[np.int64]]
_PARTS = ("train", "validation", "test")


def _sizes(n: int, split: SplitSpec) -> tuple[int, int, int]:
    """Rows per part; a part with a share above zero gets at least one row."""
    validation = max(1, round(n * split.validation)) if split.validation > 0 else 0
    test = max(1, round(n * split.test)) if split.test > 0 else 0
    train = n - validation - test
    if train < 1:
        raise DataError(
            f"split: {n} rows cannot give {validation} validation and {test} test rows and "
            f"still leave training rows; expected at least {validation + test + 1} rows, "
            "or smaller validation/test shares"
        )
    return train, validation, test


def _allocate(class_sizes: list[int], shares: tuple[float, float, float]) -> np.ndarray[Any, Any]:
    """Rows of each class per part: each within one row of its exact share.

    Every class is rounded so its parts add up to its size; which parts round
    up is chosen to keep the running totals closest to the exact totals, so
    the overall part sizes stay within a row or two of the requested shares.
    """
    alloc = np.zeros((len(class_sizes), 3), dtype=np.int64)
    behind = np.zeros(3)
    for i, size in enumerate(class_sizes):
        exact = np.array(shares) * size
        floors = np.floor(exact).astype(np.int64)
        fraction = exact - floors
        extra = size - int(floors.sum())
        order = sorted(
            (k for k in range(3) if fraction[k] > 1e-12),
            key=lambda k: (-behind[k] - fraction[k], k),
        )
        floors[order[:extra]] += 1
        # A class of three or more rows gets a row in every part that has a share.
        for k in range(3):
            if floors[k] == 0 and shares[k] > 0 and size >= 3:
                donor = int(np.argmax(floors))
                floors[donor] -= 1
                floors[k] += 1
        alloc[i] = floors
        behind += exact - floors
    return alloc


def _random(table: pa.Table, schema: Schema, split: SplitSpec) -> list[Indices]:
    n = table.num_rows
    train, validation, test = _sizes(n, split)
    rng = np.random.default_rng(split.seed)
    stratify = split.stratify and schema.task in ("binary", "multiclass") and schema.target
    if not stratify:
        order = rng.permutation(n)
        return [order[:train], order[train : train + validation], order[train + validation :]]
    assert schema.target is not None
    codes = pc.dictionary_encode(table.column(schema.target)).combine_chunks()
    labels = codes.indices.to_numpy(zero_copy_only=False)
    by_class = [np.flatnonzero(labels == k) for k in _class_order(codes.dictionary)]
    shares = (split.train, split.validation, split.test)
    alloc = _allocate([len(rows) for rows in by_class], shares)
    for k, want in ((1, validation), (2, test)):
        if want and not alloc[:, k].sum():
            # Tiny data: rounding per class left a part empty; lend it one training row.
            donor = int(np.argmax(alloc[:, 0]))
            if alloc[donor, 0] > 1:
                alloc[donor, 0] -= 1
                alloc[donor, k] += 1
    parts: list[list[Indices]] = [[], [], []]
    for rows, counts in zip(by_class, alloc, strict=True):
        shuffled = rng.permutation(rows)
        bounds = np.cumsum(counts)
        parts[0].append(shuffled[: bounds[0]])
        parts[1].append(shuffled[bounds[0] : bounds[1]])
        parts[2].append(shuffled[bounds[1] :])
    out = [np.concatenate(p) for p in parts]
    empty = [
        name
        for name, rows, want in zip(_PARTS, out, (1, validation, test), strict=True)
        if want and not len(rows)
    ]
    if empty:
        raise DataError(f"split: no rows left for {', '.join(empty)} from {n} rows")
    return out


def _class_order(dictionary: Any) -> list[int]:
    """Positions of the classes in sorted order, so results do not depend on row order."""
    return [int(i) for i in pc.array_sort_indices(dictionary).to_pylist()]


def _time(table: pa.Table, schema: Schema, split: SplitSpec) -> list[Indices]:
    column = split.time_column
    if column is None:
        stamps = schema.timestamps
        if len(stamps) != 1:
            found = f"found {', '.join(stamps)}" if stamps else "found none"
            raise DataError(
                "split: method 'time' needs one timestamp column; "
                f"{found}: set split.time_column in the spec"
            )
        column = stamps[0]
    if column not in table.column_names:
        raise DataError(
            f"split: time_column {column!r} is not in the data; available columns: "
            f"{', '.join(table.column_names[:10])}"
        )
    col = table.column(column)
    kind = col.type
    if pat.is_timestamp(kind) or pat.is_date(kind):
        col = col.cast(pa.int64())
    elif not (pat.is_integer(kind) or pat.is_floating(kind)):
        raise DataError(
            f"split: time column {column!r} holds {kind}; expected date-times or numbers"
        )
    if col.null_count:
        raise DataError(
            f"split: time column {column!r} is missing in {col.null_count} rows; "
            "expected a time for every row"
        )
    order = np.argsort(col.to_numpy(), kind="stable")
    train, validation, _ = _sizes(len(order), split)
    return [order[:train], order[train : train + validation], order[train + validation :]]


def make_split(table: pa.Table, schema: Schema, split: SplitSpec) -> dict[str, Indices]:
    """Row indices of the train, validation and test parts.

    ``random`` shuffles with ``split.seed`` and, for classification with
    ``split.stratify``, does so within each class, so every part keeps the
    class proportions (within one row per class) and every class of three or
    more rows appears in every part. ``time`` sorts by ``split.time_column``
    (else the schema's single timestamp column): the oldest rows train, the
    newest test, as the model will meet the future in production. Ties keep
    their row order.

    Returns:
        ``{"train", "validation", "test"}`` → sorted int64 indices; disjoint,
        together covering every row.

    Raises:
        DataError: too few rows for a non-empty part, or no usable time column.

    Example:
        >>> import pyarrow as pa
        >>> from mlcycle.data import ColumnSchema, Schema
        >>> from mlcycle.spec import SplitSpec
        >>> schema = Schema((ColumnSchema("x", "numeric", "feature"),), None, None, None)
        >>> parts = make_split(pa.table({"x": range(20)}), schema, SplitSpec(seed=1))
        >>> {k: len(v) for k, v in parts.items()}
        {'train': 14, 'validation': 3, 'test': 3}
    """
    parts = _time(table, schema, split) if split.method == "time" else _random(table, schema, split)
    return {name: np.sort(rows).astype(np.int64) for name, rows in zip(_PARTS, parts, strict=True)}
