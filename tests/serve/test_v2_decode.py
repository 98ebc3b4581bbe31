"""V2 decoding: the quick path for all-number models agrees with the general one or steps aside."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from mlcycle.errors import DataError
from mlcycle.registry import FeedsPlan, to_feeds
from mlcycle.serve._v2 import decode_inputs, numeric_feeds

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
    body = _edit(("inputs", 2, "data"), [1, 2])
    with pytest.raises(DataError) as quick:
        numeric_feeds(body, PLAN, 100)
    with pytest.raises(DataError) as general:
        _general(body)
    assert (
        str(quick.value) == str(general.value) == "column 'flag': value 2 at row 1 is not a boolean"
    )


def test_a_model_with_text_inputs_never_takes_the_quick_path() -> None:
    mixed = {**SIGNATURE, "inputs": [*SIGNATURE["inputs"], {"name": "city", "kind": "categorical"}]}
    body = _body()
    body["inputs"].append({"name": "city", "shape": [2], "datatype": "BYTES", "data": ["x", "y"]})
    assert numeric_feeds(body, FeedsPlan.of(mixed), 100) is None
