"""The Open Inference Protocol (KServe V2) over REST: decoding requests, encoding answers.

Tensors arrive as ``{name, shape, datatype, data}`` with ``data`` flat (or
nested) in row-major order. Each model input is one tensor named after its
column: ``[N]`` or ``[N, 1]`` for a table column, ``[N, *image_shape]`` (or
``[N, pixels]``) for an image. JSON has no NaN: ``null`` is a missing value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mlcycle.errors import DataError
from mlcycle.registry._inputs import Feeds, FeedsPlan, block_feeds

__all__ = [
    "DATATYPES",
    "attach_binary_data",
    "decode_inputs",
    "encode_outputs",
    "model_metadata",
    "numeric_feeds",
]

_NUMPY = {
    "FP32": np.float32,
    "FP64": np.float64,
    "FP16": np.float16,
    "INT64": np.int64,
    "INT32": np.int32,
    "INT16": np.int16,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "BOOL": np.bool_,
}


def attach_binary_data(body: Any, blob: bytes) -> None:
    """Move tensors sent with the binary-data extension (tritonclient's default) into ``data``.

    Raises:
        DataError: the binary section does not match the sizes the header gives.
    """
    tensors = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(tensors, list):
        return
    offset = 0
    for tensor in tensors:
        params = tensor.get("parameters") if isinstance(tensor, dict) else None
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is None:
            continue
        if not isinstance(size, int) or size < 0 or offset + size > len(blob):
            raise DataError(
                f"input {tensor.get('name')!r}: binary_data_size {size!r} overruns the body"
            )
        chunk = blob[offset : offset + size]
        offset += size
        datatype = tensor.get("datatype")
        if datatype == "BYTES":
            values, pos = [], 0
            while pos < len(chunk):
                if pos + 4 > len(chunk):
                    raise DataError(f"input {tensor.get('name')!r}: truncated BYTES element")
                length = int.from_bytes(chunk[pos : pos + 4], "little")
                values.append(chunk[pos + 4 : pos + 4 + length].decode("utf-8", "replace"))
                pos += 4 + length
            tensor["data"] = values
        elif datatype in _NUMPY:
            dtype = np.dtype(_NUMPY[datatype])
            if size % dtype.itemsize:
                raise DataError(
                    f"input {tensor.get('name')!r}: {size} bytes is not a whole number of {datatype}"
                )
            tensor["data"] = np.frombuffer(chunk, dtype=dtype).tolist()
        else:
            raise DataError(f"input {tensor.get('name')!r}: unknown datatype {datatype!r}")
    if offset != len(blob):
        raise DataError(f"{len(blob) - offset} bytes of binary data are not claimed by any input")


DATATYPES = {
    "float32": "FP32",
    "float64": "FP64",
    "int64": "INT64",
    "bool": "BOOL",
    "string": "BYTES",
}
_ACCEPTED = {
    "numeric": {"FP32", "FP64", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT8", "BOOL"},
    "boolean": {"BOOL", "FP32", "FP64", "INT64", "INT32", "INT8", "UINT8"},
    "categorical": {"BYTES"},
    "image": {"FP32", "FP64", "FP16", "INT64", "INT32", "UINT8", "INT8"},
}


_NUMBER_TYPES = frozenset(_ACCEPTED["numeric"])
_NUMBER_AND_FLAG_TYPES = _NUMBER_TYPES & _ACCEPTED["boolean"]


def numeric_feeds(body: Any, plan: FeedsPlan, max_rows: int) -> Feeds | None:
    """The feeds of a V2 request to a model whose inputs are all numbers, the quick way.

    Takes the common request whole: one ``[n]`` tensor per input, each name
    once, number datatypes, flat data of plain numbers. Anything else gives
    ``None``, and the caller decodes with :func:`decode_inputs`, which takes
    every form the protocol allows and names what is wrong.

    Raises:
        DataError: a boolean input holds a number other than 0 or 1.
    """
    if not plan.all_numbers or type(body) is not dict:
        return None
    tensors = body.get("inputs")
    if type(tensors) is not list or len(tensors) != len(plan.names):
        return None
    try:
        by_name = {t["name"]: t for t in tensors}
        ordered = [by_name[name] for name in plan.names]
        shapes = [t["shape"] for t in ordered]
        datatypes = {t["datatype"] for t in ordered}
        lists = [t["data"] for t in ordered]
    except (KeyError, TypeError):  # not objects, a name missing or unhashable, a field missing
        return None
    shape = shapes[0]
    if type(shape) is not list or len(shape) != 1 or shapes.count(shape) != len(shapes):
        return None
    n = shape[0]
    if type(n) is not int or not 0 < n <= max_rows or not all(type(s[0]) is int for s in shapes):
        return None
    if not datatypes <= (_NUMBER_AND_FLAG_TYPES if plan.booleans else _NUMBER_TYPES):
        return None
    return block_feeds(plan, lists, n)


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if data and isinstance(data[0], list):
        out: list[Any] = []
        for item in data:
            out.extend(_flatten(item))
        return out
    return data


def _specs(signature: Mapping[str, Any]) -> dict[str, Any]:
    return {spec["name"]: spec for spec in signature["inputs"]}


def _rows_of(name: str, shape: Any, spec: Mapping[str, Any], max_rows: int) -> tuple[int, int]:
    """``(rows, values per row)`` of a tensor's ``shape``, checked against its input."""
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise DataError(f"input {name!r}: shape {shape!r} is not a list of non-negative integers")
    n = shape[0]
    if n == 0:
        raise DataError(f"input {name!r}: shape {shape} holds no rows")
    if n > max_rows:
        raise DataError(f"input {name!r}: {n} rows, at most {max_rows} are taken at once")
    per_row = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    if spec["kind"] == "image":
        expected = int(np.prod(spec["shape"][1:]))
        if per_row != expected:
            raise DataError(
                f"input {name!r}: shape {shape} gives {per_row} values per row, "
                f"expected {expected} ({spec['shape'][1:]})"
            )
    elif per_row != 1:
        raise DataError(f"input {name!r}: shape {shape}, expected [{n}] or [{n}, 1]")
    return n, per_row


def decode_inputs(
    body: Any,
    signature: Mapping[str, Any],
    max_rows: int,
    specs: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], int]:
    """Columns (name → values) and the row count of a V2 infer request.

    ``specs`` (the signature's inputs by name) may be given to save building
    it on every request.

    Raises:
        DataError: a malformed request; the message names the input.
    """
    if not isinstance(body, dict):
        raise DataError("request body: expected a JSON object with 'inputs'")
    tensors = body.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise DataError("'inputs': expected a non-empty list of tensors")
    if specs is None:
        specs = _specs(signature)
    columns: dict[str, Any] = {}
    rows: int | None = None
    for i, tensor in enumerate(tensors):
        if type(tensor) is not dict:
            raise DataError(f"inputs[{i}]: expected an object with name, shape, datatype, data")
        name = tensor.get("name")
        if type(name) is not str:
            raise DataError(f"inputs[{i}].name: expected a string")
        spec = specs.get(name)
        if spec is None:
            raise DataError(f"input {name!r} is not an input of the model ({', '.join(specs)})")
        if name in columns:
            raise DataError(f"input {name!r} is given twice")
        datatype = tensor.get("datatype")
        if datatype not in _ACCEPTED[spec["kind"]]:
            raise DataError(
                f"input {name!r}: datatype {datatype!r} does not fit a {spec['kind']} input "
                f"(expected one of {', '.join(sorted(_ACCEPTED[spec['kind']]))})"
            )
        shape = tensor.get("shape")
        if type(shape) is list and len(shape) == 1 and type(shape[0]) is int and shape[0] > 0:
            n, per_row = shape[0], 1  # the common case: a column of n rows
            if n > max_rows or spec["kind"] == "image":
                n, per_row = _rows_of(name, shape, spec, max_rows)
        else:
            n, per_row = _rows_of(name, shape, spec, max_rows)
        data = tensor.get("data")
        if type(data) is not list or (data and type(data[0]) is list):
            data = _flatten(data)
        if len(data) != n * per_row:
            raise DataError(
                f"input {name!r}: {len(data)} values in data, shape {shape} needs {n * per_row}"
            )
        if rows is not None and n != rows:
            raise DataError(f"input {name!r} has {n} rows, other inputs have {rows}")
        rows = n
        if spec["kind"] == "image":
            try:
                columns[name] = np.asarray(
                    [np.nan if v is None else v for v in data], dtype=np.float32
                ).reshape((n, per_row))
            except (TypeError, ValueError):
                raise DataError(f"input {name!r}: data holds values that are not numbers") from None
        else:
            columns[name] = data
    assert rows is not None
    return columns, rows


def encode_outputs(
    outputs: Mapping[str, np.ndarray[Any, Any]], requested: list[str] | None
) -> list[dict[str, Any]]:
    """Output tensors in V2 form (``label`` as BYTES, numbers as FP32)."""
    encoded = []
    for name, array in outputs.items():
        if requested is not None and name not in requested:
            continue
        arr = np.asarray(array)
        data: list[Any]
        if arr.dtype == object or arr.dtype.kind in "US":
            datatype, data = "BYTES", [str(v) for v in arr.ravel().tolist()]
        else:
            datatype, data = "FP32", arr.astype(np.float32).ravel().tolist()
        encoded.append({"name": name, "shape": list(arr.shape), "datatype": datatype, "data": data})
    return encoded


def model_metadata(name: str, versions: list[int], signature: Mapping[str, Any]) -> dict[str, Any]:
    """``GET /v2/models/{name}``: inputs and outputs from the signature."""

    def tensor(spec: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "name": spec["name"],
            "datatype": DATATYPES.get(spec["dtype"], "FP32"),
            "shape": list(spec["shape"]),
        }

    return {
        "name": name,
        "versions": [str(v) for v in versions],
        "platform": "onnxruntime_onnx",
        "inputs": [tensor(s) for s in signature["inputs"]],
        "outputs": [tensor(s) for s in signature["outputs"]],
    }
