"""The Open Inference Protocol (KServe V2) over REST: decoding requests, encoding answers.

Tensors arrive as ``{name, shape, datatype, data}`` with ``data`` flat (or
nested) in row-major order. Each model input is one tensor named after its
column: ``[N]`` or ``[N, 1]`` for a table column, ``[N, *image_shape]`` (or
``[N, pixels]``) for an image. JSON has no NaN: ``null`` is a missing value.

The declared datatype is held to: a ``BOOL`` tensor holds true, false, 0 or
1; an integer one holds integers its type can store; ``FP16`` holds numbers
within float16's range. Numbers go to the graph as float32, and one that is
not finite there is refused by :func:`~mlcycle.registry.to_feeds`.
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
    "bytes_tensor",
    "decode_inputs",
    "encode_outputs",
    "model_metadata",
    "numeric_feeds",
    "output_tensors",
    "requested_outputs",
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
        if type(size) is not int or size < 0 or offset + size > len(blob):
            raise DataError(
                f"input {tensor.get('name')!r}: binary_data_size {size!r} overruns the body"
            )
        chunk = blob[offset : offset + size]
        offset += size
        datatype = tensor.get("datatype")
        if type(datatype) is not str:
            raise DataError(f"input {tensor.get('name')!r}: datatype {datatype!r} is not a string")
        if datatype == "BYTES":
            tensor["data"] = _bytes_elements(tensor.get("name"), chunk)
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


def _bytes_elements(name: Any, chunk: bytes) -> list[str]:
    """The elements of a binary ``BYTES`` tensor: each a 4-byte little-endian length, then its bytes."""
    values: list[str] = []
    pos = 0
    while pos < len(chunk):
        if pos + 4 > len(chunk):
            raise DataError(
                f"input {name!r}: BYTES element {len(values)} is cut short: "
                f"{len(chunk) - pos} bytes left where its 4-byte length was expected"
            )
        length = int.from_bytes(chunk[pos : pos + 4], "little")
        if pos + 4 + length > len(chunk):
            raise DataError(
                f"input {name!r}: BYTES element {len(values)} claims {length} bytes, "
                f"only {len(chunk) - pos - 4} are left in its binary_data_size"
            )
        values.append(chunk[pos + 4 : pos + 4 + length].decode("utf-8", "replace"))
        pos += 4 + length
    return values


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
_ANY_NUMBER = frozenset({"FP32", "FP64"})  # to_feeds checks these against float32
# integer types: the smallest and largest value each holds
_INTEGERS = {
    name: (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    for name, dtype in _NUMPY.items()
    if np.dtype(dtype).kind in "iu"
}
_FP16_MAX = float(np.finfo(np.float16).max)


def _expected(datatype: str) -> str:
    if datatype == "BOOL":
        return "true, false, 0 or 1"
    if datatype in _INTEGERS:
        low, high = _INTEGERS[datatype]
        return f"an integer from {low} to {high}"
    return f"a number of magnitude up to {_FP16_MAX:g}"


def _fits(datatype: str, value: Any) -> bool:
    """One value (not ``None``) can be held by ``datatype`` (one of BOOL, the integers, FP16)."""
    if isinstance(value, bool):
        return True  # true and false are 1 and 0 of every number type
    if not isinstance(value, int | float):
        return False
    if datatype == "BOOL":
        return value in (0, 1)
    if datatype in _INTEGERS:
        low, high = _INTEGERS[datatype]
        return (isinstance(value, int) or value.is_integer()) and low <= value <= high
    return abs(value) <= _FP16_MAX  # FP16; NaN compares False, inf is too large


def _misfit(datatype: str, data: list[Any]) -> int | None:
    """The position of the first value of ``data`` its declared ``datatype`` cannot hold.

    ``None`` values (missing) are left to the input's own checks. Vectorised
    when ``data`` holds plain numbers; value by value otherwise.
    """
    if datatype in _ANY_NUMBER or datatype == "BYTES":
        return None
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        arr = None
    if arr is not None and arr.ndim == 1 and arr.dtype.kind in "biuf":
        if arr.dtype.kind == "b":
            return None
        if datatype == "BOOL":
            bad = (arr != 0) & (arr != 1)
        elif datatype in _INTEGERS:
            low, high = _INTEGERS[datatype]
            bad = (arr < low) | (arr > high)
            if arr.dtype.kind == "f":
                bad |= arr != np.floor(arr)
        else:
            bad = ~(np.abs(arr) <= _FP16_MAX)
        return int(np.flatnonzero(bad)[0]) if bad.any() else None
    for i, value in enumerate(data):
        if value is not None and not _fits(datatype, value):
            return i
    return None


def _check_datatype(name: str, datatype: str, data: list[Any], per_row: int) -> None:
    i = _misfit(datatype, data)
    if i is not None:
        raise DataError(
            f"input {name!r}: value {data[i]!r} at row {i // per_row} does not fit datatype "
            f"{datatype} (expected {_expected(datatype)})"
        )


def numeric_feeds(body: Any, plan: FeedsPlan, max_rows: int) -> Feeds | None:
    """The feeds of a V2 request to a model whose inputs are all numbers, the quick way.

    Takes the common request whole: one ``[n]`` tensor per input, each name
    once, number datatypes, flat data of plain numbers. Anything else gives
    ``None``, and the caller decodes with :func:`decode_inputs`, which takes
    every form the protocol allows and names what is wrong.

    Raises:
        DataError: a value is not finite in float32, or a boolean input holds
            a number other than 0 or 1 (as :func:`~mlcycle.registry.to_feeds`).
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
    if not datatypes <= _ANY_NUMBER and any(
        type(t["data"]) is not list or _misfit(t["datatype"], t["data"]) is not None
        for t in ordered
    ):
        return None  # the general path names the value
    return block_feeds(plan, lists, n)


def _flatten(data: Any) -> list[Any]:
    """Nested lists as one flat list, in row-major order (without recursion: JSON nests deep)."""
    if not isinstance(data, list):
        return [data]
    if not data or not isinstance(data[0], list):
        return data
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


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
        if type(datatype) is not str or datatype not in _ACCEPTED[spec["kind"]]:
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
        _check_datatype(name, datatype, data, per_row)
        if spec["kind"] == "image":
            try:
                with np.errstate(over="ignore"):  # beyond float32: inf, which to_feeds refuses
                    pixels = np.asarray([np.nan if v is None else v for v in data], np.float32)
                columns[name] = pixels.reshape((n, per_row))
            except (TypeError, ValueError, OverflowError):
                raise DataError(f"input {name!r}: data holds values that are not numbers") from None
        else:
            columns[name] = data
    assert rows is not None
    return columns, rows


def requested_outputs(body: Mapping[str, Any], signature: Mapping[str, Any]) -> list[str] | None:
    """The names in the request's ``outputs`` (``None``: all of them), each one the model has.

    Raises:
        DataError: ``outputs`` is malformed or names an output the model does not have.
    """
    requested = body.get("outputs")
    if requested is None:
        return None
    if type(requested) is not list:
        raise DataError("'outputs': expected a list of objects with a 'name'")
    available = [spec["name"] for spec in signature["outputs"]]
    names = []
    for i, item in enumerate(requested):
        name = item.get("name") if type(item) is dict else None
        if type(name) is not str:
            raise DataError(f"outputs[{i}]: expected an object with a string 'name'")
        if name not in available:
            raise DataError(
                f"output {name!r} is not an output of the model ({', '.join(available)})"
            )
        names.append(name)
    return names


def output_tensors(
    outputs: Mapping[str, np.ndarray[Any, Any]], requested: list[str] | None
) -> list[tuple[str, str, list[int], Any]]:
    """The answer's tensors as ``(name, datatype, shape, values)``, in the protocol's types:
    text (``label``) as BYTES, its values a list of ``str``; numbers as FP32, a flat float32 array.

    Both transports encode these: JSON (:func:`encode_outputs`) and gRPC.
    """
    tensors: list[tuple[str, str, list[int], Any]] = []
    for name, array in outputs.items():
        if requested is not None and name not in requested:
            continue
        arr = np.asarray(array)
        if arr.dtype == object or arr.dtype.kind in "US":
            tensors.append((name, "BYTES", list(arr.shape), [str(v) for v in arr.ravel().tolist()]))
        else:
            tensors.append((name, "FP32", list(arr.shape), arr.astype(np.float32).ravel()))
    return tensors


def encode_outputs(
    outputs: Mapping[str, np.ndarray[Any, Any]], requested: list[str] | None
) -> list[dict[str, Any]]:
    """Output tensors in V2's JSON form (``label`` as BYTES, numbers as FP32)."""
    return [
        {
            "name": name,
            "shape": shape,
            "datatype": datatype,
            "data": values if datatype == "BYTES" else values.tolist(),
        }
        for name, datatype, shape, values in output_tensors(outputs, requested)
    ]


def bytes_tensor(values: list[str]) -> bytes:
    """Text elements in V2's binary ``BYTES`` form: each a 4-byte little-endian length, then
    its UTF-8 bytes (the inverse of how :func:`attach_binary_data` reads them)."""
    parts: list[bytes] = []
    for value in values:
        data = value.encode()
        parts += (len(data).to_bytes(4, "little"), data)
    return b"".join(parts)


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
