"""Turn what a caller has (DataFrame, Arrow, numpy, records) into the graph's inputs.

Validation follows the signature and names the column, the row and the value
that is wrong, so a bad request never reaches ONNX Runtime as a cryptic
shape error. Needs numpy only (pandas and pyarrow when given their objects).

Numbers become float32, the graph's type. A value that is not finite there
(``inf``, ``"-Infinity"``, ``1e39``) is refused: the graph would answer NaN
probabilities, and one such row would stop monitoring. A missing value
(``None``, ``NaN``) is taken where the signature marks the input
``nullable`` (the graph imputes it), refused where it does not.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from mlcycle.errors import DataError

__all__ = ["Feeds", "FeedsPlan", "block_feeds", "model_inputs", "to_feeds"]

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n"}


def _columns_of(data: Any, names: list[str]) -> tuple[dict[str, Any], int]:
    """A mapping column → sequence, and the row count."""
    module = type(data).__module__
    if module.startswith("pandas"):
        frame = data if hasattr(data, "columns") else data.to_frame()
        return {str(c): frame[c].to_numpy() for c in frame.columns}, len(frame)
    if module.startswith("pyarrow"):
        return {name: _arrow_column(data.column(name)) for name in data.column_names}, data.num_rows
    if isinstance(data, np.ndarray):
        return _from_array(data, names)
    if isinstance(data, Mapping):
        columns = {str(k): v for k, v in data.items()}
        lengths = {len(v) for v in columns.values() if hasattr(v, "__len__")}
        if len(lengths) > 1:
            raise DataError(f"columns have different lengths: {sorted(lengths)}")
        return columns, lengths.pop() if lengths else 0
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        if not data:
            raise DataError("no rows to predict")
        if not all(isinstance(r, Mapping) for r in data):
            bad = next(i for i, r in enumerate(data) if not isinstance(r, Mapping))
            raise DataError(f"record {bad} is a {type(data[bad]).__name__}: expected a mapping")
        if len(data) == 1:  # a single record: its own mapping, with string keys
            return {str(k): [v] for k, v in data[0].items()}, 1
        keys: dict[Any, None] = {}  # the union of the records' keys, in first-seen order
        for record in data:
            keys.update(dict.fromkeys(record))
        return {str(k): [r.get(k) for r in data] for k in keys}, len(data)
    raise DataError(
        f"cannot predict on a {type(data).__name__}: expected a DataFrame, an Arrow table, "
        "a numpy array, a mapping of columns or a list of records"
    )


def _arrow_column(column: Any) -> Any:
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        # combining copies even a single chunk: a batch-scoring chunk is one, 30 columns a time
        column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    if pa.types.is_fixed_size_list(column.type) and column.null_count == 0:
        flat = column.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape((len(column), column.type.list_size))
    return column.to_numpy(zero_copy_only=False)


def _from_array(array: np.ndarray[Any, Any], names: list[str]) -> tuple[dict[str, Any], int]:
    if array.ndim == 0:
        raise DataError("a scalar is not a batch of rows")
    if len(names) == 1 and array.ndim >= 2:
        return {names[0]: array}, int(array.shape[0])
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != len(names):
        raise DataError(
            f"array of shape {list(array.shape)}: expected [rows, {len(names)}] with columns "
            f"in the order {names}"
        )
    return {name: array[:, j] for j, name in enumerate(names)}, int(array.shape[0])


def _objects(values: Any, n: int) -> np.ndarray[Any, Any]:
    """A 1-D object array of the column's values, whatever they hold (lists stay elements)."""
    if isinstance(values, np.ndarray) and values.ndim == 1:
        return values.astype(object)
    out = np.empty(n, dtype=object)
    items = (
        list(values)
        if not isinstance(values, np.ndarray)
        else list(values.reshape(len(values), -1))
    )
    if len(items) != n:
        raise DataError(f"expected {n} values, got {len(items)}")
    for i, value in enumerate(items):
        out[i] = value
    return out


def _numeric_block(columns: list[Any], n: int) -> np.ndarray[Any, Any] | None:
    """Numeric columns given as lists of plain numbers, as one float32 ``[columns, rows]`` array.

    One conversion for all of them instead of one per column: the common case
    of a served request (a V2 tensor or a record per row) with many numeric
    inputs. ``None`` when anything is unusual (a missing value, a string, a
    nested list, arrays): the caller then goes column by column, which gives
    the same numbers and names what is wrong.
    """
    if len(columns) < 2 or not all(type(c) is list for c in columns):
        return None
    try:
        block = np.array(columns)
    except (ValueError, TypeError, OverflowError):
        return None
    if block.shape != (len(columns), n) or block.dtype.kind not in "fiub":
        return None
    return _float32(block)


def _float32(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``values`` as float32; one beyond float32's range becomes ``inf`` (refused by the checks)."""
    with np.errstate(over="ignore"):
        return values.astype(np.float32)


def _shown(value: Any) -> str:
    """A value as the caller wrote it, for a message (``1e+39``, ``'inf'``, never ``np.float64(…)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _check_boolean(name: str, out: np.ndarray[Any, Any]) -> None:
    bad = ~np.isnan(out) & (out != 0) & (out != 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"column {name!r}: value {out[i]:g} at row {i} is not a boolean")


def _check_finite(name: str, out: np.ndarray[Any, Any], raw: Any, nullable: bool) -> None:
    """Refuse a value that is infinite in float32, and a missing one where none is allowed.

    ``raw``: the values as given, to show the bad one as the caller wrote it.
    """
    if np.isfinite(out).all():
        return
    bad = np.isinf(out) if nullable else ~np.isfinite(out)
    if not bad.any():
        return  # missing values only, and the graph imputes them
    i = int(np.flatnonzero(bad)[0])
    if np.isnan(out[i]):
        raise DataError(
            f"column {name!r}: value missing at row {i}; this input takes no missing values"
        )
    raise DataError(
        f"column {name!r}: value {_shown(raw[i])} at row {i} is not a finite float32 "
        f"(expected a magnitude up to {_FLOAT32_MAX:.7g})"
    )


def _numeric(name: str, values: Any, n: int, boolean: bool, nullable: bool) -> np.ndarray[Any, Any]:
    try:
        arr = np.asarray(values)
    except ValueError:  # ragged: some values are lists
        arr = _objects(values, n)
    if arr.ndim != 1:
        arr = _objects(values, n)
    if arr.dtype.kind in "fiub":
        out = _float32(arr)
    else:
        out = np.empty(n, dtype=np.float32)
        with np.errstate(over="ignore"):
            for i, value in enumerate(arr.tolist()):
                out[i] = _number(name, i, value, boolean)
    if out.shape != (n,):
        raise DataError(f"column {name!r}: expected one value per row, got shape {list(out.shape)}")
    _check_finite(name, out, arr, nullable)
    if boolean:
        _check_boolean(name, out)
    return out


def _number(name: str, row: int, value: Any, boolean: bool) -> float:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    if isinstance(value, bool | int | float | np.number):
        try:
            return float(value)
        except OverflowError:
            raise DataError(
                f"column {name!r}: value at row {row} is too large for float32"
            ) from None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "nan", "null", "none"):
            return math.nan
        if boolean and text in _TRUE:
            return 1.0
        if boolean and text in _FALSE:
            return 0.0
        try:
            return float(text)
        except ValueError:
            pass
    kind = "a boolean" if boolean else "a number"
    raise DataError(f"column {name!r}: value {value!r} at row {row} is not {kind}")


def _categorical(name: str, values: Any, n: int) -> np.ndarray[Any, Any]:
    out = np.empty(n, dtype=object)
    for i, value in enumerate(_objects(values, n).tolist()):
        if isinstance(value, list | dict | tuple | np.ndarray):
            raise DataError(f"column {name!r}: value {value!r} at row {i} is not a category")
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out[i] = ""
        elif isinstance(value, bool):
            out[i] = str(value).lower()
        elif isinstance(value, float) and value.is_integer():
            out[i] = str(int(value))
        else:
            out[i] = str(value)
    return out


def _image(name: str, values: Any, n: int, shape: list[int]) -> np.ndarray[Any, Any]:
    try:
        with np.errstate(over="ignore"):  # beyond float32: inf, refused below
            if isinstance(values, np.ndarray) and values.dtype != object:
                arr = values.astype(np.float32)
            else:
                arr = np.asarray(
                    [np.asarray(v, dtype=np.float32) for v in values], dtype=np.float32
                )
    except (TypeError, ValueError) as exc:
        raise DataError(f"column {name!r}: not an array of numbers ({exc})") from None
    size = int(np.prod(shape))
    if arr.shape[1:] != tuple(shape):
        if arr.ndim >= 2 and int(np.prod(arr.shape[1:])) == size:
            arr = arr.reshape((arr.shape[0], *shape))
        else:
            raise DataError(
                f"column {name!r}: images of shape {list(arr.shape[1:])}, expected {shape} "
                f"({size} values per row)"
            )
    if not np.isfinite(arr).all():
        row = int(np.flatnonzero(~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1))[0])
        raise DataError(f"column {name!r}: image at row {row} holds NaN or infinite values")
    return np.ascontiguousarray(arr)


class Feeds(dict[str, np.ndarray[Any, Any]]):
    """Graph inputs by name, as :func:`to_feeds` returns them.

    ``block``: when every input of the model is a number column and the
    values came as plain numbers, all of them as one float32 ``[inputs, rows]``
    array whose rows are the feeds (in the signature's order). Dynamic
    batching and the prediction log then move one array per request instead
    of one per input. ``None`` otherwise.
    """

    block: np.ndarray[Any, Any] | None = None
    # the signature's context columns the caller sent (sensitive, id, timestamp), as
    # text (None where missing): never fed to the model, written to the prediction log
    context: dict[str, np.ndarray[Any, Any]] | None = None


class FeedsPlan(NamedTuple):
    """What :func:`to_feeds` needs of a signature, worked out once per model."""

    inputs: tuple[Mapping[str, Any], ...]
    names: tuple[str, ...]
    allowed: frozenset[Any]
    numbers: tuple[Mapping[str, Any], ...]  # the numeric and boolean inputs
    booleans: tuple[int, ...]  # positions of the boolean ones in ``numbers``
    nullable: tuple[bool, ...]  # per input of ``numbers``: a missing value is imputed
    context: tuple[str, ...] = ()  # sensitive, id and timestamp columns: logged, never fed

    @property
    def all_numbers(self) -> bool:
        """Every input is a number column (so feeds can come as one block)."""
        return len(self.numbers) == len(self.names)

    @classmethod
    def of(cls, signature: Mapping[str, Any]) -> FeedsPlan:
        inputs = tuple(signature["inputs"])
        names = tuple(spec["name"] for spec in inputs)
        numbers = tuple(spec for spec in inputs if spec["kind"] in ("numeric", "boolean"))
        booleans = tuple(j for j, spec in enumerate(numbers) if spec["kind"] == "boolean")
        nullable = tuple(bool(spec.get("nullable", True)) for spec in numbers)
        context = tuple(str(c["name"]) for c in signature.get("context") or ())
        allowed = frozenset({*names, *context, signature.get("target")})
        return cls(inputs, names, allowed, numbers, booleans, nullable, context)


def _checked_block(plan: FeedsPlan, lists: list[Any], n: int) -> np.ndarray[Any, Any] | None:
    """The number inputs' block (see :func:`_numeric_block`), checked as column by column.

    One ``isfinite`` over the block in the common case; the rows are looked at
    one by one only when it finds something, so the first complaint is the one
    :func:`_numeric` makes on the same columns.
    """
    block = _numeric_block(lists, n)
    if block is None:
        return None
    if np.isfinite(block).all():
        for j in plan.booleans:
            _check_boolean(plan.numbers[j]["name"], block[j])
        return block
    booleans = set(plan.booleans)
    for j, spec in enumerate(plan.numbers):
        _check_finite(spec["name"], block[j], lists[j], plan.nullable[j])
        if j in booleans:
            _check_boolean(spec["name"], block[j])
    return block


def block_feeds(plan: FeedsPlan, lists: list[Any], n: int) -> Feeds | None:
    """Feeds with a ``block`` from one list of ``n`` values per input, in the signature's order.

    For a model whose inputs are all numbers (``plan.all_numbers``). ``None``
    when a value is not a plain number: the caller then takes the general
    path, which converts what it can and names what it cannot.

    Raises:
        DataError: a value is not finite in float32, missing where the input
            takes no gaps, or other than 0 or 1 in a boolean input.
    """
    block = _checked_block(plan, lists, n) if plan.all_numbers else None
    if block is None:
        return None
    feeds = Feeds(zip(plan.names, block, strict=True))
    feeds.block = block
    return feeds


def _record_lists(data: Any, names: tuple[str, ...]) -> list[Any] | None:
    """Records with exactly the model's keys, as one list per input; else ``None``."""
    if type(data) is not list or not data:
        return None
    k = len(names)
    if not all(type(r) is dict and len(r) == k for r in data):
        return None
    try:
        if len(data) == 1:
            record = data[0]
            return [[record[name]] for name in names]
        return [[r[name] for r in data] for name in names]
    except KeyError:
        return None


def to_feeds(
    data: Any,
    signature: Mapping[str, Any],
    *,
    max_rows: int | None = None,
    plan: FeedsPlan | None = None,
) -> Feeds:
    """The ONNX Runtime feeds for ``data``, checked against ``signature``.

    Columns the signature does not take are an error, except the target
    column (it may ride along in a table of labelled rows). ``plan`` (from
    ``FeedsPlan.of(signature)``) saves working it out on every call.

    Raises:
        DataError: a column is missing or unexpected, or a value is unusable;
            the message names the column (and the row and value where one is bad).
    """
    if plan is None:
        plan = FeedsPlan.of(signature)
    names = plan.names
    if plan.all_numbers and type(data) is list and (max_rows is None or len(data) <= max_rows):
        lists = _record_lists(data, names)  # records of plain numbers: straight to the block
        if lists is not None:
            fast = block_feeds(plan, lists, len(data))
            if fast is not None:
                return fast
    columns, n = _columns_of(data, list(names))
    if n == 0:
        raise DataError("no rows to predict")
    if max_rows is not None and n > max_rows:
        raise DataError(f"{n} rows: at most {max_rows} are taken at once")
    if len(columns) != len(names) or not all(name in columns for name in names):
        missing = [name for name in names if name not in columns]
        if missing:
            raise DataError(
                f"missing input column {missing[0]!r}"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                + f"; the model takes: {', '.join(names)}"
            )
        extra = [c for c in columns if c not in plan.allowed]
        if extra:
            raise DataError(f"unexpected column {extra[0]!r}: the model takes {', '.join(names)}")
    context = {c: _context(columns[c], n) for c in plan.context if c in columns} or None
    numbers = plan.numbers
    lists = [columns[spec["name"]] for spec in numbers]
    fast = block_feeds(plan, lists, n)  # every input a plain number: one block
    if fast is not None:
        fast.context = context
        return fast
    block = None if plan.all_numbers else _checked_block(plan, lists, n)
    feeds = Feeds()
    if block is not None:  # a block of the number inputs: the others come column by column
        feeds.update((spec["name"], row) for spec, row in zip(numbers, block, strict=True))
    for spec in plan.inputs:
        name, kind = spec["name"], spec["kind"]
        if name in feeds:
            continue
        if kind in ("numeric", "boolean"):
            nullable = bool(spec.get("nullable", True))
            feeds[name] = _numeric(name, columns[name], n, kind == "boolean", nullable)
        elif kind == "categorical":
            feeds[name] = _categorical(name, columns[name], n)
        elif kind == "image":
            feeds[name] = _image(name, columns[name], n, list(spec["shape"][1:]))
        else:  # pragma: no cover - signatures are written by mlcycle
            raise DataError(f"input {name!r} has unknown kind {kind!r}")
    ordered = Feeds((name, feeds[name]) for name in names)  # in the signature's order
    ordered.context = context
    return ordered


def _context(values: Any, n: int) -> np.ndarray[Any, Any]:
    """A context column as text, ``None`` where missing (as the log and monitoring read it)."""
    out = np.empty(n, dtype=object)
    for i, value in enumerate(values):
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        out[i] = None if missing else str(value)
    return out


def model_inputs(table: Any, signature: Mapping[str, Any]) -> Any:
    """The model's input columns of ``table``, numbers read from text where every value parses.

    Text (from CSV) that Arrow parses as numbers in one vectorised pass is cast
    here; text it cannot parse (``'abc'``, ``'true'``, ``' 2'``) goes on as
    text, for :func:`~mlcycle.registry.to_feeds` to read value by value and to
    name the value it rejects. ``table`` is an Arrow table (batch scoring, the
    prediction log's references).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    columns: list[Any] = []
    names: list[str] = []
    for spec in signature["inputs"]:
        column = table.column(spec["name"])
        if spec["kind"] in ("numeric", "boolean") and (
            pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        ):
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
                column = pc.cast(column, pa.float64())
        columns.append(column)
        names.append(spec["name"])
    return pa.Table.from_arrays(columns, names=names)
