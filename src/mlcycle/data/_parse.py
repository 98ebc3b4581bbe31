"""Turning text into typed columns, one whole column at a time.

CSV files arrive as text. pyarrow's own CSV inference looks only at the first
block of a file and then fails on a stray ``'abc'`` a million rows later, and
it turns ``'02139'`` into 2139 before the spec can say the column is a code.
So CSV sources return text, and the schema decides each column's type from
*all* its values (of all files of a folder), with the spec having the last
word. The same rules serve text columns from Parquet files and pandas frames,
so ``'3.5'`` means the same thing whatever the source.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlcycle.errors import DataError

__all__ = [
    "MOSTLY_NUMBERS",
    "bad_values_error",
    "boolean_mask",
    "number_mask",
    "to_boolean",
    "to_number",
    "to_timestamp",
]

#: Share of non-missing values that must parse as numbers for a text column to
#: count as "meant to be numeric"; below it the column is simply categorical.
MOSTLY_NUMBERS = 0.9

_NUMBER = r"^[+-]?((\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|inf|infinity|nan)$"
_INTEGER = r"^[+-]?\d+$"
_DATE = r"^\d{4}-\d{2}-\d{2}"
_SHOWN = 5

Column = Any  # a pyarrow Array or ChunkedArray of strings; pyarrow ships no type stubs


def _trimmed(arr: Column) -> Column:
    return pc.utf8_trim_whitespace(arr)


def number_mask(arr: Column) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Which values of a text column parse as numbers (False where missing).

    Example:
        >>> import pyarrow as pa
        >>> number_mask(pa.array(["1", " 2.5", "abc", None])).tolist()
        [True, True, False, False]
    """
    matched = pc.match_substring_regex(_trimmed(arr), _NUMBER, ignore_case=True)
    mask: np.ndarray[Any, np.dtype[np.bool_]] = np.asarray(
        matched.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.bool_
    )
    return mask


def to_number(arr: Column) -> Column:
    """A text column whose values all parse as numbers, as int64 or float64.

    Integers stay integers unless one overflows int64; anything with a decimal
    point or exponent makes the whole column float64.

    Raises:
        pyarrow.ArrowInvalid: a value does not parse (callers check
            :func:`number_mask` first).
    """
    text = _trimmed(arr)
    ints = pc.match_substring_regex(text, _INTEGER)
    if pc.all(ints).as_py() in (True, None):
        try:
            return pc.cast(text, pa.int64())
        except (pa.ArrowInvalid, OverflowError):
            pass
    return pc.cast(text, pa.float64())


def to_timestamp(arr: Column) -> Column | None:
    """A text column of ISO 8601 date-times as ``timestamp[us]``, or None if one fails.

    Naive values stay naive; values with a zone offset (``Z``, ``+02:00``) are
    converted to UTC. A column mixing both is not a timestamp column.

    Example:
        >>> import pyarrow as pa
        >>> to_timestamp(pa.array(["2024-01-01", "2024-01-02 03:04:05"])).type
        TimestampType(timestamp[us])
        >>> to_timestamp(pa.array(["2024-01-01", "soon"])) is None
        True
    """
    text = _trimmed(arr)
    # A failing cast is slow; a regex rules out ordinary text first.
    if not pc.all(pc.match_substring_regex(text, _DATE)).as_py():
        return None
    for stamp in (pa.timestamp("us"), pa.timestamp("us", tz="UTC")):
        try:
            return pc.cast(text, stamp)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return None


def boolean_mask(arr: Column) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Which values of a text column are ``true``/``false`` in any case (False where missing)."""
    lowered = pc.utf8_lower(_trimmed(arr))
    found = pc.is_in(lowered, value_set=pa.array(["true", "false"]))
    return np.asarray(
        pc.and_(found, pc.is_valid(arr)).to_numpy(zero_copy_only=False), dtype=np.bool_
    )


def to_boolean(arr: Column) -> Column:
    """A text column of ``true``/``false`` (any case) as booleans."""
    return pc.equal(pc.utf8_lower(_trimmed(arr)), "true")


def bad_values_error(
    name: str,
    arr: Column,
    bad: np.ndarray[Any, Any],
    advice: str,
    expected: tuple[str, str] = ("a number", "numbers"),
) -> DataError:
    """The error for a column holding values of the wrong kind.

    Names the column, how many values fail, the first few 0-based row numbers
    with their values, and what the user can do about it. ``expected`` is
    the singular and plural of what the values should have been.

    Example:
        >>> import numpy as np, pyarrow as pa
        >>> arr = pa.array(["1", "x", "3"])
        >>> print(bad_values_error("age", arr, np.array([False, True, False]), "fix it"))
        column 'age': 1 value is not a number (row 1: 'x'); fix it
    """
    rows = np.flatnonzero(bad)
    shown = rows[:_SHOWN]
    values = ", ".join(repr(arr[int(i)].as_py()) for i in shown)
    more = f" and {len(rows) - len(shown)} more" if len(rows) > len(shown) else ""
    where = "row" if len(shown) == 1 else "rows"
    one, many = expected
    count = f"1 value is not {one}" if len(rows) == 1 else f"{len(rows)} values are not {many}"
    return DataError(
        f"column {name!r}: {count} ({where} {', '.join(str(int(i)) for i in shown)}{more}: "
        f"{values}); {advice}"
    )
