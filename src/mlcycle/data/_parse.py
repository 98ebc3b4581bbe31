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
    "ambiguous_dates",
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
_YEAR_FIRST = r"^\d{4}[/.](?P<m>\d{1,2})[/.](?P<d>\d{1,2})$"
_DAY_MONTH = (
    r"^(?P<a>\d{1,2})[/.-](?P<b>\d{1,2})[/.-]\d{4}"
    r"(?: \d{1,2}:\d{2}(?::\d{2})?)?$"
)
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
    """A text column of dates or date-times as ``timestamp[us]``, or None if one fails.

    Understood, the whole column in one form:

    * ISO 8601: ``2024-01-31``, ``2024-01-31 10:05:09``, ``2024-01-31T10:05``;
      naive values stay naive, values with a zone offset (``Z``, ``+02:00``)
      become UTC, and a column mixing both is not a timestamp column;
    * ``yyyy/mm/dd``;
    * ``dd/mm/yyyy`` or ``mm/dd/yyyy`` (``/``, ``.`` or ``-`` between the parts,
      optionally followed by ``hh:mm`` or ``hh:mm:ss``), when the values tell
      which part is the day: one above 12 in the first place means day first,
      in the second place month first. When no value tells (see
      :func:`ambiguous_dates`), the column is not read as dates.

    Example:
        >>> import pyarrow as pa
        >>> to_timestamp(pa.array(["2024-01-01", "2024-01-02 03:04:05"])).type
        TimestampType(timestamp[us])
        >>> to_timestamp(pa.array(["31/01/2024", "01/02/2024 10:30"])).to_pylist()[1]
        datetime.datetime(2024, 2, 1, 10, 30)
        >>> to_timestamp(pa.array(["2024-01-01", "soon"])) is None
        True
    """
    text = _trimmed(arr)
    # A failing cast is slow; a regex rules out ordinary text first.
    if pc.all(pc.match_substring_regex(text, _DATE)).as_py():
        for stamp in (pa.timestamp("us"), pa.timestamp("us", tz="UTC")):
            try:
                return pc.cast(text, stamp)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
        return None
    if pc.all(pc.match_substring_regex(text, _YEAR_FIRST)).as_py():
        fields = pc.extract_regex(text, _YEAR_FIRST)
        unified = pc.replace_substring_regex(text, r"[.]", "/")
        return _parse_formats(text, unified, "%Y/%m/%d", fields, ("d", "m"))
    parts = _day_month_parts(text)
    if parts is None:
        return None
    fields, first, second = parts
    if first > 12 and second <= 12:
        date, names = "%d/%m/%Y", ("a", "b")
    elif second > 12 and first <= 12:
        date, names = "%m/%d/%Y", ("b", "a")
    else:
        return None
    unified = pc.replace_substring_regex(text, r"^(\d+)[.-](\d+)[.-]", r"\1/\2/")
    return _parse_formats(text, unified, date, fields, names)


def _parse_formats(
    original: Column, text: Column, date: str, fields: Column, day_month: tuple[str, str]
) -> Column | None:
    """Each value in the first of ``date``, ``date hh:mm``, ``date hh:mm:ss`` it fits.

    ``fields`` are the regex's named parts; ``day_month`` names the day's and
    the month's, which the parsed value must keep (strptime reads 31/02 as 2 March).
    """
    parsed = None
    for clock in ("", " %H:%M", " %H:%M:%S"):
        attempt = pc.strptime(text, format=date + clock, unit="us", error_is_null=True)
        parsed = attempt if parsed is None else pc.coalesce(parsed, attempt)
    assert parsed is not None
    # A value none of them fits (25:00) makes the column something else.
    if parsed.null_count != original.null_count:
        return None
    day, month = (pc.cast(pc.struct_field(fields, n), pa.int64()) for n in day_month)
    kept = pc.and_(pc.equal(pc.day(parsed), day), pc.equal(pc.month(parsed), month))
    if pc.all(kept).as_py() is False:
        return None
    return parsed


def _day_month_parts(text: Column) -> tuple[Column, int, int] | None:
    """The parts of ``dd/mm/yyyy``-like values and the largest first and second, or None."""
    if len(text) == text.null_count:
        return None
    if not pc.all(pc.match_substring_regex(text, _DAY_MONTH)).as_py():
        return None
    fields = pc.extract_regex(text, _DAY_MONTH)
    first = pc.max(pc.cast(pc.struct_field(fields, "a"), pa.int64())).as_py()
    second = pc.max(pc.cast(pc.struct_field(fields, "b"), pa.int64())).as_py()
    return fields, int(first), int(second)


def ambiguous_dates(arr: Column) -> bool:
    """Whether a text column holds ``dd/mm/yyyy``-like dates with no part above 12.

    Such a column could be read day-first or month-first: it is left as text,
    and the profile warns.

    Example:
        >>> import pyarrow as pa
        >>> ambiguous_dates(pa.array(["01/02/2024", "03/04/2024"]))
        True
        >>> ambiguous_dates(pa.array(["31/01/2024", "03/04/2024"]))
        False
    """
    parts = _day_month_parts(_trimmed(arr))
    return parts is not None and max(parts[1:]) <= 12


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
