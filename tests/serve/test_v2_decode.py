"""V2 decoding: the quick path for all-number models agrees with the general one or steps aside."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from mlcycle.errors import DataError
from mlcycle.registry import FeedsPlan, to_feeds
from mlcycle.serve._v2 import attach_binary_data, decode_inputs, numeric_feeds

SIGNATURE = {
    "task": "classification",
    "inputs": [
        {"name": "a", "kind": "numeric", "dtype": "float32", "shape": [-1]},
        {"name": "b", "kind": "numeric", "dtype": "float32", "shape": [-1]},
        {"name": "flag", "kind": "boolean", "dtype": "float32", "shape": [-1]},
    ],
}
PLAN = FeedsPlan.of(SIGNATURE)


def _body(n: int = 2) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "b", "shape": [n], "datatype": "FP64", "data": [2.5 * i for i in range(n)]},
            {"name": "a", "shape": [n], "datatype": "INT64", "data": list(range(n))},
            {"name": "flag", "shape": [n], "datatype": "BOOL", "data": [True, False][:n]},
        ]
    }


def _general(body: dict[str, Any]) -> Any:
    columns, _ = decode_inputs(body, SIGNATURE, 100)
    return to_feeds(columns, SIGNATURE)


def test_the_common_request_gives_the_general_paths_feeds() -> None:
    body = _body()
    quick = numeric_feeds(body, PLAN, 100)
    assert quick is not None and quick.block is not None
    assert list(quick) == ["a", "b", "flag"]  # the signature's order, whatever the body's
    general = _general(body)
    for name in general:
        np.testing.assert_array_equal(quick[name], general[name])


def _edit(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(_body())
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


STEP_ASIDE = {
    "shape [n, 1]": _edit(("inputs", 0, "shape"), [2, 1]),
    "nested data": _edit(("inputs", 0, "data"), [[0.0], [2.5]]),
    "shape of a bool": {
        "inputs": [{**t, "shape": [True] if t["name"] == "b" else [1]} for t in _body(1)["inputs"]]
    },
    "shape of a float": _edit(("inputs", 1, "shape"), [2.0]),
    "shapes that differ": _edit(("inputs", 1, "shape"), [3]),
    "too many rows": _edit(("inputs",), [{**t, "shape": [101]} for t in _body()["inputs"]]),
    "a text datatype": _edit(("inputs", 0, "datatype"), "BYTES"),
    "FP16 on a boolean model": _edit(("inputs", 0, "datatype"), "FP16"),
    "a missing value": _edit(("inputs", 0, "data"), [None, 1.0]),
    "a number as text": _edit(("inputs", 0, "data"), ["1.5", 1.0]),
    "a name twice": _edit(("inputs", 2, "name"), "a"),
    "an unknown name": _edit(("inputs", 2, "name"), "zip"),
    "a tensor without data": _edit(
        ("inputs", 2), {"name": "flag", "shape": [2], "datatype": "BOOL"}
    ),
    "a tensor that is a list": _edit(("inputs", 2), ["flag"]),
    "an extra tensor": _edit(("inputs",), [*_body()["inputs"], _body()["inputs"][0]]),
    "data as text": _edit(("inputs", 0, "data"), "12"),
    "no inputs": {"inputs": []},
    "not an object": [],
}


@pytest.mark.parametrize("body", STEP_ASIDE.values(), ids=list(STEP_ASIDE))
def test_anything_unusual_is_left_to_the_general_path(body: Any) -> None:
    assert numeric_feeds(body, PLAN, 100) is None


def test_a_boolean_input_out_of_range_is_named_as_the_general_path_names_it() -> None:
    body = _edit(("inputs", 2), {"name": "flag", "shape": [2], "datatype": "FP32", "data": [1, 2]})
    with pytest.raises(DataError) as quick:
        numeric_feeds(body, PLAN, 100)
    with pytest.raises(DataError) as general:
        _general(body)
    assert (
        str(quick.value) == str(general.value) == "column 'flag': value 2 at row 1 is not a boolean"
    )


MISFITS = {
    "BOOL 17.99": (2, "BOOL", [True, 17.99], "value 17.99 at row 1", "true, false, 0 or 1"),
    "BOOL 2": (2, "BOOL", [1, 2], "value 2 at row 1", "true, false, 0 or 1"),
    "INT64 1.5": (
        1,
        "INT64",
        [0, 1.5],
        "value 1.5 at row 1",
        "an integer from -9223372036854775808 to 9223372036854775807",
    ),
    "INT8 17.99": (1, "INT8", [17.99, 1], "value 17.99 at row 0", "an integer from -128 to 127"),
    "INT8 300": (1, "INT8", [1, 300], "value 300 at row 1", "an integer from -128 to 127"),
    "UINT8 -1": (1, "UINT8", [None, -1], "value -1 at row 1", "an integer from 0 to 255"),
    "INT16 as text": (
        1,
        "INT16",
        ["7", 1],
        "value '7' at row 0",
        "an integer from -32768 to 32767",
    ),
    "FP16 1e5": (
        0,
        "FP16",
        [1e5, 0.0],
        "value 100000.0 at row 0",
        "a number of magnitude up to 65504",
    ),
}


@pytest.mark.parametrize(
    ("tensor", "datatype", "data", "where", "expected"), MISFITS.values(), ids=list(MISFITS)
)
def test_data_the_declared_datatype_cannot_hold_is_named(
    tensor: int, datatype: str, data: list[Any], where: str, expected: str
) -> None:
    body = _edit(
        ("inputs", tensor), {**_body()["inputs"][tensor], "datatype": datatype, "data": data}
    )
    assert numeric_feeds(body, PLAN, 100) is None  # the general path says what is wrong
    name = body["inputs"][tensor]["name"]
    with pytest.raises(DataError) as caught:
        _general(body)
    assert (
        str(caught.value)
        == f"input {name!r}: {where} does not fit datatype {datatype} (expected {expected})"
    )


def test_data_the_declared_datatype_holds_takes_the_quick_path() -> None:
    body = _edit(
        ("inputs", 1), {"name": "a", "shape": [2], "datatype": "INT8", "data": [-128, 127.0]}
    )
    body["inputs"][2] = {"name": "flag", "shape": [2], "datatype": "BOOL", "data": [1, False]}
    quick = numeric_feeds(body, PLAN, 100)
    assert quick is not None
    np.testing.assert_array_equal(quick["a"], [-128, 127])
    np.testing.assert_array_equal(quick["flag"], [1, 0])


@pytest.mark.parametrize("datatype", [[], {}, None, 3])
def test_a_datatype_that_is_not_a_string_is_named(datatype: Any) -> None:
    body = _edit(("inputs", 0, "datatype"), datatype)
    assert numeric_feeds(body, PLAN, 100) is None
    with pytest.raises(DataError, match=r"input 'b': datatype .* does not fit a numeric input"):
        _general(body)
    with pytest.raises(DataError, match=r"datatype .* is not a string"):
        attach_binary_data(
            {
                "inputs": [
                    {"name": "b", "datatype": datatype, "parameters": {"binary_data_size": 0}}
                ]
            },
            b"",
        )


def test_a_deeply_nested_tensor_is_flattened_without_recursion() -> None:
    data: Any = [1.0]
    for _ in range(5000):
        data = [data]
    body = _edit(("inputs", 0, "data"), data)
    with pytest.raises(DataError, match="input 'b': 1 values in data, shape"):
        _general(body)


def _binary_bytes(*elements: bytes) -> bytes:
    return b"".join(len(e).to_bytes(4, "little") + e for e in elements)


def test_binary_bytes_elements_are_read_whole_or_refused() -> None:
    blob = _binary_bytes(b"paris", "lyon\u00e9".encode())
    body = {
        "inputs": [
            {"name": "city", "datatype": "BYTES", "parameters": {"binary_data_size": len(blob)}}
        ]
    }
    attach_binary_data(body, blob)
    assert body["inputs"][0]["data"] == ["paris", "lyon\u00e9"]
    cut = blob[:-2]  # the last element claims 6 bytes, 4 remain
    body = {
        "inputs": [
            {"name": "city", "datatype": "BYTES", "parameters": {"binary_data_size": len(cut)}}
        ]
    }
    with pytest.raises(DataError) as caught:
        attach_binary_data(body, cut)
    assert str(caught.value) == (
        "input 'city': BYTES element 1 claims 6 bytes, only 4 are left in its binary_data_size"
    )
    short = blob + b"\x01\x00"
    body = {
        "inputs": [
            {"name": "city", "datatype": "BYTES", "parameters": {"binary_data_size": len(short)}}
        ]
    }
    with pytest.raises(DataError, match="BYTES element 2 is cut short: 2 bytes left"):
        attach_binary_data(body, short)


def test_a_model_with_text_inputs_never_takes_the_quick_path() -> None:
    mixed = {**SIGNATURE, "inputs": [*SIGNATURE["inputs"], {"name": "city", "kind": "categorical"}]}
    body = _body()
    body["inputs"].append({"name": "city", "shape": [2], "datatype": "BYTES", "data": ["x", "y"]})
    assert numeric_feeds(body, FeedsPlan.of(mixed), 100) is None
