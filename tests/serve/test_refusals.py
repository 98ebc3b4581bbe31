"""Requests the server refuses with a 4xx naming what is wrong, never a 500 or a NaN answer."""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np
import pytest

ROW = {"income": 61.5, "city": "paris", "member": True}


def _v2(**changes: dict[str, Any]) -> dict[str, Any]:
    """A one-row V2 body; ``income={"data": [1e39]}`` changes fields of a tensor."""
    tensors = {
        "income": {"name": "income", "shape": [1], "datatype": "FP32", "data": [61.5]},
        "city": {"name": "city", "shape": [1], "datatype": "BYTES", "data": ["paris"]},
        "member": {"name": "member", "shape": [1], "datatype": "BOOL", "data": [True]},
    }
    for name, change in changes.items():
        tensors[name] = {**tensors[name], **change}
    return {"inputs": list(tensors.values())}


END = "is not a finite float32 (expected a magnitude up to 3.402823e+38)"
NOT_FINITE = [
    ("/predict", {"records": [ROW, {**ROW, "income": "inf"}]}, "'inf' at row 1"),
    ("/predict", {"records": [{**ROW, "income": "-Infinity"}]}, "'-Infinity' at row 0"),
    ("/predict", {"records": [ROW, ROW, {**ROW, "income": 1e39}]}, "1e+39 at row 2"),
    ("/predict", {"records": [{**ROW, "income": 10**40}]}, "1e+40 at row 0"),  # JSON: a float
    ("/v2/models/loyalty/infer", _v2(income={"data": [1e39]}), "1e+39 at row 0"),
    ("/v2/models/loyalty/infer", _v2(income={"data": ["-inf"]}), "'-inf' at row 0"),
]


@pytest.mark.parametrize(("path", "body", "where"), NOT_FINITE)
def test_a_value_not_finite_in_float32_is_a_422_naming_column_and_row(
    serve: Any, path: str, body: Any, where: str
) -> None:
    with serve() as (url, _):
        got = httpx.post(f"{url}{path}", json=body)
        assert got.status_code == 422, got.text
        assert got.json()["error"] == f"column 'income': value {where} {END}"


def test_a_missing_value_is_still_imputed(serve: Any) -> None:
    with serve() as (url, _):
        got = httpx.post(f"{url}/predict", json={"records": [{**ROW, "income": None}]})
        assert got.status_code == 200
        assert np.isfinite(list(got.json()["probabilities"][0].values())).all()


def test_a_binary_fp32_infinity_is_a_422(serve: Any) -> None:
    header = _v2()
    header["inputs"][0] = {
        "name": "income",
        "shape": [2],
        "datatype": "FP32",
        "parameters": {"binary_data_size": 8},
    }
    header["inputs"][1] |= {"shape": [2], "data": ["paris", "lyon"]}
    header["inputs"][2] |= {"shape": [2], "data": [True, False]}
    head = json.dumps(header).encode()
    blob = np.array([1.0, np.inf], dtype=np.float32).tobytes()
    with serve() as (url, _):
        got = httpx.post(
            f"{url}/v2/models/loyalty/infer",
            content=head + blob,
            headers={
                "content-type": "application/octet-stream",
                "inference-header-content-length": str(len(head)),
            },
        )
        assert got.status_code == 422, got.text
        assert got.json()["error"] == f"column 'income': value inf at row 1 {END}"


BAD_V2 = [
    (
        _v2(member={"datatype": "BOOL", "data": [17.99]}),
        "input 'member': value 17.99 at row 0 does not fit datatype BOOL",
    ),
    (
        _v2(income={"datatype": "INT8", "data": [17.99]}),
        "input 'income': value 17.99 at row 0 does not fit datatype INT8 "
        "(expected an integer from -128 to 127)",
    ),
    (_v2(income={"datatype": []}), "input 'income': datatype [] does not fit a numeric input"),
    (_v2(income={"datatype": {}}), "input 'income': datatype {} does not fit a numeric input"),
    (_v2(city={"datatype": ["BYTES"]}), "input 'city': datatype ['BYTES'] does not fit"),
    (
        _v2() | {"outputs": [{"name": "label"}, {"name": "logits"}]},
        "output 'logits' is not an output of the model (probabilities, label)",
    ),
    (_v2() | {"outputs": [{"name": 3}]}, "outputs[0]: expected an object with a string 'name'"),
    (_v2() | {"outputs": "label"}, "'outputs': expected a list of objects with a 'name'"),
]


@pytest.mark.parametrize(("body", "message"), BAD_V2)
def test_malformed_v2_requests_are_a_400_naming_what_is_wrong(
    serve: Any, body: Any, message: str
) -> None:
    with serve() as (url, _):
        got = httpx.post(f"{url}/v2/models/loyalty/infer", json=body)
        assert got.status_code == 400, got.text
        assert got.json()["error"].startswith(message), got.text


def test_odd_digits_in_paths_and_headers_are_a_4xx(serve: Any) -> None:
    with serve() as (url, _), httpx.Client(base_url=url) as client:
        for path in (
            "/v2/models/loyalty/versions/%C2%B2/infer",
            "/v2/models/loyalty/versions/\u0661/infer",
        ):
            got = client.post(path, json=_v2())
            assert got.status_code == 404, got.text
            assert got.json()["error"].startswith("version '")
        for path in (
            "/v2/models/loyalty/versions/%C2%B2",
            "/v2/models/loyalty/versions/%C2%B2/ready",
        ):
            assert client.get(path).status_code == 404
        for value in ("\u00b2".encode("latin-1"), b"12a", b"-1", b"99999999999"):
            got = client.post(
                "/v2/models/loyalty/infer",
                content=json.dumps(_v2()).encode(),
                headers={"inference-header-content-length": value},
            )
            assert got.status_code == 400, (value, got.text)
            assert got.json()["error"].startswith("Inference-Header-Content-Length ")
        assert client.post("/v2/models/loyalty/infer", json=_v2()).status_code == 200


def test_a_binary_bytes_element_running_past_its_data_is_a_400(serve: Any) -> None:
    header = _v2()
    header["inputs"][1] = {
        "name": "city",
        "shape": [1],
        "datatype": "BYTES",
        "parameters": {"binary_data_size": 7},
    }
    head = json.dumps(header).encode()
    blob = (9).to_bytes(4, "little") + b"par"  # claims 9 bytes, 3 follow
    with serve() as (url, _):
        got = httpx.post(
            f"{url}/v2/models/loyalty/infer",
            content=head + blob,
            headers={"inference-header-content-length": str(len(head))},
        )
        assert got.status_code == 400
        assert got.json()["error"] == (
            "input 'city': BYTES element 0 claims 9 bytes, only 3 are left in its binary_data_size"
        )
