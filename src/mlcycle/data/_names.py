"""Column names: the row index a file carries by accident, and names a model cannot take.

Feature columns become the inputs of the exported ONNX graph, the keys of
served requests and the columns of the prediction log, under the very name
they have in the data. So a name is checked when the data is added, not when
a trained model fails to export an hour later:

* a leading column without a name holding integers (what pandas' default
  ``to_csv()`` writes for the index, read back as ``''`` or ``'Unnamed: 0'``)
  is a row index, not data: it is dropped, with a note saying so; so is an
  unnamed column with no values at all (a trailing comma on every line);
* any other unnamed column, a name that is only spaces or holds control
  characters, two names that differ only in case, spacing or Unicode form,
  and names starting with ``_mlc_`` (the exported graph's own) are refused;
* a feature may not be called like a model output (``probabilities``,
  ``label``, ``value``): the target may.

Columns the spec names in ``roles`` or ``types`` are the user's decision and
are never dropped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from mlcycle.errors import DataError

__all__ = [
    "MODEL_OUTPUTS",
    "RESERVED_PREFIX",
    "check_feature_names",
    "check_names",
    "drop_row_index",
    "is_unnamed",
]

#: Output names of every exported model: a feature (graph input) cannot share one.
MODEL_OUTPUTS: tuple[str, ...] = ("probabilities", "label", "value")
#: Prefix of the names the exported graph uses internally.
RESERVED_PREFIX = "_mlc_"

# pandas names a blank header 'Unnamed: 3' (and 'Unnamed: 0_level_0' in a multi-row header).
_PANDAS_BLANK = re.compile(r"^Unnamed: \d+(_level_\d+)?$")
_INTEGER = r"^\s*[+-]?\d+\s*$"
_BAD_CATEGORIES = ("Cc", "Cs", "Zl", "Zp")  # control, lone surrogate, line/paragraph separator


def is_unnamed(name: str) -> bool:
    """A header left blank: empty, spaces only, or pandas' ``Unnamed: N`` for one.

    Example:
        >>> [is_unnamed(n) for n in ("", " ", "Unnamed: 0", "unnamed")]
        [True, True, True, False]
    """
    return not name.strip() or _PANDAS_BLANK.match(name) is not None


def _holds_integers(col: Any) -> bool:
    if col.null_count:
        return False
    kind = col.type
    if pat.is_integer(kind):
        return True
    if pat.is_string(kind) or pat.is_large_string(kind):
        return bool(pc.all(pc.match_substring_regex(col, _INTEGER)).as_py())
    return False


def _span(col: Any) -> str:
    values = pc.cast(col, pa.int64()) if not pat.is_integer(col.type) else col
    low, high = pc.min_max(values).values()
    return f"integers {low.as_py()}..{high.as_py()}"


def drop_row_index(table: pa.Table, kept: Iterable[str] = ()) -> tuple[pa.Table, list[str]]:
    """The table without a written-out row index or empty unnamed columns, and notes saying so.

    ``kept`` are names the spec sets a role or type for: never dropped.

    Example:
        >>> table = pa.table({"Unnamed: 0": ["0", "1"], "x": ["5", "7"]})
        >>> table, notes = drop_row_index(table)
        >>> table.column_names, notes[0][:52]
        (['x'], "dropped column 'Unnamed: 0': it has no name and hold")
    """
    keep = set(kept)
    drop: list[str] = []
    notes: list[str] = []
    leading = True
    for name in table.column_names:
        unnamed = is_unnamed(name) and name not in keep
        col = table.column(name)
        if unnamed and leading and _holds_integers(col):
            drop.append(name)
            notes.append(
                f"dropped column {name!r}: it has no name and holds {_span(col)}, a row index "
                "such as pandas' to_csv() writes (write with index=False, or name the column "
                "to keep it)"
            )
            continue
        leading = False
        if unnamed and col.null_count == len(col):
            drop.append(name)
            notes.append(f"dropped column {name!r}: it has no name and no values")
    if not drop:
        return table, notes
    return table.drop_columns(drop), notes


def _normal(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def check_names(
    names: Iterable[str], ignored: Iterable[str] = (), kept: Iterable[str] = ()
) -> None:
    """Refuse names that cannot be a model input, naming the column and what to do.

    ``ignored`` columns (role ``ignore``) reach no model and are not checked;
    ``kept`` are names the spec gives a role or type, so ``Unnamed: 0`` there
    is a name the user chose.

    Raises:
        DataError: a column has no name, a name holds a control character or
            starts with ``_mlc_``, or two names differ only in case, spacing
            or Unicode form.

    Example:
        >>> check_names(["age", "Age "])
        Traceback (most recent call last):
        ...
        mlcycle.errors.DataError: columns 'age' and 'Age ' differ only in case, spacing or Unicode form; rename one of them
    """
    seen: dict[str, str] = {}
    skip, chosen = set(ignored), set(kept)
    for position, name in enumerate(names):
        if name in skip:
            continue
        if not name.strip() or (is_unnamed(name) and name not in chosen):
            raise DataError(
                f"column {position} has no name (header {name!r}); name it in the header, "
                "or drop the column"
            )
        bad = next((c for c in name if unicodedata.category(c) in _BAD_CATEGORIES), None)
        if bad is not None:
            raise DataError(
                f"column {name!r}: its name holds the control character {bad!r}; "
                "expected printable characters only: rename it"
            )
        if name.startswith(RESERVED_PREFIX):
            raise DataError(
                f"column {name!r}: names starting with {RESERVED_PREFIX!r} are reserved for "
                "mlcycle's model graphs; rename it"
            )
        key = _normal(name)
        if key in seen:
            first = seen[key]
            # Names that print alike are told apart by their code points.
            spelled = (
                f" ({first!a} and {name!a})"
                if repr(first) == repr(unicodedata.normalize("NFC", name))
                else ""
            )
            raise DataError(
                f"columns {first!r} and {name!r}{spelled} differ only in case, spacing or "
                "Unicode form; rename one of them"
            )
        seen[key] = name


def check_feature_names(features: Iterable[str]) -> None:
    """Refuse a feature named like a model output (a target may be called ``label``).

    Raises:
        DataError: naming the feature and the ways out.
    """
    for name in features:
        if name in MODEL_OUTPUTS:
            raise DataError(
                f"feature column {name!r} has the name of a model output "
                f"({', '.join(MODEL_OUTPUTS)}); rename it, or set roles: {{{name}: ignore}}"
            )
