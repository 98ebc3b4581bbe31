"""``to_feeds``: number columns converted all at once give what column by column gives."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlcycle.errors import DataError
from mlcycle.registry import Feeds, to_feeds

SIGNATURE = {
    "task": "classification",
    "target": "y",
    "inputs": [
        {"name": "a", "kind": "numeric", "dtype": "float32", "shape": [-1]},
        {"name": "b", "kind": "numeric", "dtype": "float32", "shape": [-1]},
        {"name": "c", "kind": "boolean", "dtype": "float32", "shape": [-1]},
        {"name": "d", "kind": "numeric", "dtype": "float32", "shape": [-1]},
    ],
}
MIXED = {
    **SIGNATURE,
    "inputs": [*SIGNATURE["inputs"], {"name": "e", "kind": "categorical", "dtype": "string"}],
}


def _one_by_one(columns: dict[str, list[Any]], signature: dict[str, Any]) -> dict[str, Any]:
    """The reference: each column through a one-input signature (never the shared block)."""
    out: dict[str, Any] = {}
    for spec in signature["inputs"]:
        single = {**signature, "inputs": [spec]}
        out.update(to_feeds({spec["name"]: columns[spec["name"]]}, single))
    return out


def _outcome(call: Any) -> tuple[str, Any]:
    try:
        return "ok", call()
    except DataError as exc:
        return "error", str(exc)


numbers = (
    st.floats(allow_nan=True, allow_infinity=False, width=32)
    | st.integers(-(2**40), 2**40)
    | st.booleans()
)
odd = (
    st.none()
    | st.sampled_from(["1.5", " 2 ", "nan", "", "yes", "abc", "1e3"])
    | st.lists(st.floats(width=32), max_size=2)
    | st.integers(2**70, 2**80)
    | st.sampled_from([math.inf, -math.inf, 1e39, "inf", "-Infinity", 10**39])
)
flags = st.sampled_from([0, 1, 0.0, 1.0, True, False, 2, -1.5, None, "true"])
# plain numbers most of the time, so both the block and the fallback are taken often
value = st.one_of(numbers, numbers, numbers, numbers, odd)


@st.composite
def tables(draw: st.DrawFn) -> dict[str, list[Any]]:
    n = draw(st.integers(1, 4))
    column = st.lists(value, min_size=n, max_size=n)
    return {
        "a": draw(column),
        "b": draw(column),
        "c": draw(
            st.lists(st.one_of(flags, st.sampled_from([0, 1, True])), min_size=n, max_size=n)
        ),
        "d": draw(column),
    }


SEEN: dict[str, int] = {"block": 0, "columns": 0, "error": 0}


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(tables())
def test_the_block_gives_what_column_by_column_gives(columns: dict[str, list[Any]]) -> None:
    kind, got = _outcome(lambda: to_feeds(columns, SIGNATURE))
    ref_kind, expected = _outcome(lambda: _one_by_one(columns, SIGNATURE))
    assert kind == ref_kind, (columns, got, expected)
    if kind == "error":  # the same first complaint, naming the same column
        assert got == expected
        SEEN["error"] += 1
        return
    SEEN["block" if got.block is not None else "columns"] += 1
    assert list(got) == list("abcd")  # the signature's order
    for name in "abcd":
        assert got[name].dtype == np.float32
        np.testing.assert_array_equal(got[name], expected[name])


def test_the_property_took_every_path() -> None:
    """Guards the property above against a strategy that stops reaching a path."""
    if sum(SEEN.values()) == 0:
        pytest.skip("run with the property test")
    assert min(SEEN.values()) >= 20, SEEN


def test_plain_numbers_come_as_one_block_with_the_feeds_as_its_rows() -> None:
    records = [{"a": 1.5, "b": 2, "c": True, "d": -3.25}, {"a": 0.0, "b": 7, "c": 0, "d": 1e30}]
    feeds = to_feeds(records, SIGNATURE)
    assert isinstance(feeds, Feeds) and feeds.block is not None
    assert feeds.block.shape == (4, 2) and feeds.block.dtype == np.float32
    for j, name in enumerate("abcd"):
        assert np.shares_memory(feeds[name], feeds.block)
        np.testing.assert_array_equal(feeds[name], feeds.block[j])
    np.testing.assert_array_equal(feeds["c"], [1.0, 0.0])
    # a missing value goes column by column: same numbers, no block
    records[1]["b"] = None
    slow = to_feeds(records, SIGNATURE)
    assert slow.block is None and math.isnan(slow["b"][1]) and slow["b"][0] == 2.0


def test_a_model_with_text_inputs_has_no_block_but_the_same_numbers() -> None:
    columns = {"a": [1.0, 2.0], "b": [3, 4], "c": [1, 0], "d": [0.5, 0.25], "e": ["x", None]}
    feeds = to_feeds(columns, MIXED)
    assert feeds.block is None
    assert list(feeds) == list("abcde")
    np.testing.assert_array_equal(feeds["b"], np.array([3, 4], dtype=np.float32))
    assert feeds["e"].tolist() == ["x", ""]


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (
            {"a": [1.0], "b": [2.0], "c": [2], "d": [0.0]},
            "column 'c': value 2 at row 0 is not a boolean",
        ),
        (
            {"a": [1.0], "b": ["x"], "c": [1], "d": [0.0]},
            "column 'b': value 'x' at row 0 is not a number",
        ),
        ({"a": [1.0], "b": [2.0], "c": [1]}, "missing input column 'd'"),
        ({"a": [1.0], "b": [2.0], "c": [1], "d": [0.0], "z": [1]}, "unexpected column 'z'"),
    ],
)
def test_bad_columns_are_named(columns: dict[str, list[Any]], message: str) -> None:
    with pytest.raises(DataError, match=message):
        to_feeds(columns, SIGNATURE)


def test_the_target_may_ride_along() -> None:
    columns = {"a": [1.0], "b": [2.0], "c": [1], "d": [0.0], "y": ["yes"]}
    assert list(to_feeds(columns, SIGNATURE)) == list("abcd")


NOT_FINITE = [math.inf, -math.inf, 1e39, -3.5e38, "inf", "-Infinity", "1e39", 10**39]


@pytest.mark.parametrize("bad", NOT_FINITE, ids=repr)
@pytest.mark.parametrize("form", ["records", "columns", "pandas"])
def test_a_value_not_finite_in_float32_is_named_with_its_row(bad: Any, form: str) -> None:
    columns: dict[str, list[Any]] = {"a": [1.0, 2.0, 3.0], "b": [0.5, bad, 1.5], "c": [1, 0, 1]}
    columns["d"] = [0.0, 0.0, 0.0]
    data: Any = columns
    if form == "records":
        data = [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]
    elif form == "pandas":
        import pandas as pd

        data = pd.DataFrame(columns)
    with pytest.raises(DataError) as caught:
        to_feeds(data, SIGNATURE)
    shown = repr(bad)
    assert str(caught.value) == (
        f"column 'b': value {shown} at row 1 is not a finite float32 "
        "(expected a magnitude up to 3.402823e+38)"
    )


def test_a_missing_value_is_taken_where_the_input_is_nullable_only() -> None:
    records = [{"a": 1.0, "b": math.nan, "c": 1, "d": 0.0}, {"a": 2.0, "b": 1.0, "c": 0, "d": 0.0}]
    assert math.isnan(to_feeds(records, SIGNATURE)["b"][0])  # no "nullable": taken, as before
    strict = {
        **SIGNATURE,
        "inputs": [{**s, "nullable": s["name"] != "b"} for s in SIGNATURE["inputs"]],
    }
    for data in (records, [{**records[0], "b": None}, records[1]]):
        with pytest.raises(DataError) as caught:
            to_feeds(data, strict)
        assert str(caught.value) == (
            "column 'b': value missing at row 0; this input takes no missing values"
        )
    records[0]["b"] = 3.0
    assert to_feeds(records, strict)["b"][0] == 3.0
