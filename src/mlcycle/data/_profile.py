"""A summary of a dataset version that people read before they train.

The profile answers the questions that save a wasted training run: how many
rows, what is missing, what each column looks like, how the classes are
balanced, and what looks wrong. It is plain JSON (stored with the version,
shown by the CLI and the HTML report) and later serves as the reference
distribution for drift monitoring, which is why numeric columns carry
quantiles and histograms and categorical ones their frequencies.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from mlcycle.data._parse import ambiguous_dates

if TYPE_CHECKING:
    from mlcycle.data._schema import ColumnSchema, Schema

__all__ = ["profile_table"]

_QUANTILES = {
    "p01": 0.01,
    "p05": 0.05,
    "p25": 0.25,
    "p50": 0.5,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}
_BINS = 20
_TOP = 50
_OTHER = "__other__"
_HIGH_MISSING = 0.5
# A categorical column with more values than this, and fewer rows than _ROWS_PER_VALUE per
# value, teaches a model little; one with a different value in each of at least
# _ID_MIN_ROWS rows is a row key.
_HIGH_CARDINALITY = 50
_ROWS_PER_VALUE = 10
_ID_MIN_ROWS = 20
_CODE_WORDS = frozenset(
    {"zip", "zipcode", "postal", "postcode", "plz", "fips", "code", "id", "sku"}
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _number(value: Any) -> int | float:
    return int(value) if isinstance(value, np.integer | int) else float(value)


def _numeric_stats(col: Any) -> dict[str, Any]:
    values = pc.drop_null(col).to_numpy()
    if pat.is_timestamp(col.type):
        low, high = pc.min_max(col).values()
        return {
            "min": low.as_py().isoformat() if low.is_valid else None,
            "max": high.as_py().isoformat() if high.is_valid else None,
            "unique": int(np.unique(values).size),
        }
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    out: dict[str, Any] = {"unique": int(np.unique(values).size)}
    if values.size != finite.size:
        out["infinite"] = int(values.size - finite.size)
    if finite.size == 0:
        return {**out, "min": None, "max": None, "mean": None, "std": None}
    as_float = finite.astype(np.float64, copy=False)
    counts, edges = np.histogram(as_float, bins=_BINS)
    quantiles = np.quantile(as_float, list(_QUANTILES.values()))
    return {
        **out,
        "min": _number(finite.min()),
        "max": _number(finite.max()),
        "mean": float(as_float.mean()),
        "std": float(as_float.std(ddof=1)) if finite.size > 1 else 0.0,
        "quantiles": {k: float(q) for k, q in zip(_QUANTILES, quantiles, strict=True)},
        "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
    }


def _counts(col: Any) -> tuple[list[str], np.ndarray[Any, np.dtype[np.int64]]]:
    """Distinct values as strings and their counts, most frequent first (ties by value)."""
    counted = pc.value_counts(pc.drop_null(col))
    values = [str(v) for v in pc.cast(counted.field("values"), pa.string()).to_pylist()]
    counts = np.asarray(counted.field("counts").to_numpy(), dtype=np.int64)
    order = sorted(range(len(values)), key=lambda i: (-counts[i], values[i]))
    return [values[i] for i in order], counts[order]


def _frequency_stats(col: Any) -> dict[str, Any]:
    values, counts = _counts(col)
    frequencies = {v: int(c) for v, c in zip(values[:_TOP], counts[:_TOP], strict=True)}
    if len(values) > _TOP:
        frequencies[_OTHER] = int(counts[_TOP:].sum())
    return {"unique": len(values), "frequencies": frequencies}


def _image_stats(col: Any, column: ColumnSchema) -> dict[str, Any]:
    pixels = pa.chunked_array([c.flatten() for c in col.chunks], pa.float32())
    low, high = pc.min_max(pixels).values()
    return {
        "shape": list(column.shape) if column.shape else None,
        "pixel_min": low.as_py(),
        "pixel_max": high.as_py(),
        "pixel_mean": pc.mean(pixels).as_py(),
        "pixel_std": pc.stddev(pixels).as_py(),
    }


def _column_warnings(name: str, role: str, entry: dict[str, Any], rows: int) -> list[str]:
    warnings = []
    if entry["missing_share"] > _HIGH_MISSING:
        warnings.append(
            f"column {name!r} is {entry['missing_share']:.0%} missing "
            f"({entry['missing']} of {rows} rows); consider dropping it"
        )
    if entry.get("unique") == 1 and role in ("feature", "sensitive"):
        only = next(iter(entry["frequencies"])) if "frequencies" in entry else entry.get("min")
        warnings.append(
            f"column {name!r} is constant (every present value is {only!r}); it cannot help a model"
        )
    if entry.get("infinite"):
        warnings.append(f"column {name!r} has {entry['infinite']} infinite values")
    return warnings


def _tokens(name: str) -> list[str]:
    """``'zipCode'``, ``'ZIP_code'`` → ``['zip', 'code']``."""
    spaced = _CAMEL.sub(" ", name)
    return [t.lower() for t in re.split(r"[^A-Za-z0-9]+", spaced) if t]


def _looks_like_code(name: str) -> bool:
    return any(t in _CODE_WORDS or t.endswith("code") for t in _tokens(name))


def _meaning_warnings(column: ColumnSchema, col: Any, entry: dict[str, Any]) -> list[str]:
    """Columns whose type probably says the wrong thing about what they mean."""
    name = column.name
    if column.role not in ("feature", "sensitive"):
        return []
    if column.type == "categorical":
        present, unique = entry["count"], entry["unique"]
        if unique == present >= _ID_MIN_ROWS:
            return [
                f"column {name!r} holds a different value in each of its {present} rows: it "
                f"names rows rather than describing them; set roles: {{{name}: id}}"
            ]
        if unique > _HIGH_CARDINALITY and present < _ROWS_PER_VALUE * unique:
            return [
                f"column {name!r} is categorical with {unique} distinct values in {present} "
                f"rows, too few rows per value to learn from: if it identifies rows set "
                f"roles: {{{name}: id}}, otherwise group rare values or set roles: "
                f"{{{name}: ignore}}"
            ]
        return []
    if column.type == "numeric" and pat.is_integer(col.type) and _looks_like_code(name):
        return [
            f"column {name!r} holds whole numbers but its name says it is a code: if they "
            f"label things rather than count them, set types: {{{name}: categorical}}, or "
            f"roles: {{{name}: id}} if it identifies rows"
        ]
    return []


def _class_balance(
    table: pa.Table, schema: Schema, imbalance_ratio: float
) -> tuple[dict[str, int], list[str]]:
    assert schema.target is not None and schema.classes is not None
    values, counts = _counts(table.column(schema.target))
    found = dict(zip(values, counts.tolist(), strict=True))
    balance = {c: int(found.get(c, 0)) for c in schema.classes}
    present = {c: n for c, n in balance.items() if n}
    if len(present) < 2:
        return balance, []
    major = max(present, key=lambda c: present[c])
    minor = min(present, key=lambda c: present[c])
    ratio = present[major] / present[minor]
    if ratio < imbalance_ratio:
        return balance, []
    return balance, [
        f"class imbalance: {major!r} has {ratio:.1f}x the rows of {minor!r} "
        f"({present[major]} vs {present[minor]}); consider train.class_weight: balanced "
        "or train.sampler: balanced"
    ]


def profile_table(table: pa.Table, schema: Schema, imbalance_ratio: float = 3.0) -> dict[str, Any]:
    """Summarise a canonical table: counts, per-column statistics, warnings.

    Args:
        table: the canonical table (see :func:`~mlcycle.data.canonicalize`).
        schema: its schema.
        imbalance_ratio: warn when the largest class has at least this many
            times the rows of the smallest.

    Returns:
        A JSON-serialisable mapping with ``rows``, ``columns`` (count),
        ``features`` (count), ``target``, ``task``, ``classes``,
        ``per_column`` (name → statistics), ``class_balance`` (class → rows,
        classification only) and ``warnings`` (sentences for people).

    Example:
        >>> import pyarrow as pa
        >>> from mlcycle.data import Schema, ColumnSchema
        >>> schema = Schema((ColumnSchema("y", "categorical", "target"),), "y", "binary", ("a", "b"))
        >>> profile = profile_table(pa.table({"y": ["a"] * 9 + ["b"]}), schema)
        >>> profile["class_balance"], profile["warnings"][0][:40]
        ({'a': 9, 'b': 1}, "class imbalance: 'a' has 9.0x the rows o")
    """
    rows = table.num_rows
    per_column: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    for column in schema.columns:
        col = table.column(column.name)
        missing = col.null_count
        entry: dict[str, Any] = {
            "type": column.type,
            "role": column.role,
            "count": rows - missing,
            "missing": missing,
            "missing_share": missing / rows if rows else 0.0,
        }
        if column.type == "numeric":
            entry.update(_numeric_stats(col))
        elif column.type == "image":
            entry.update(_image_stats(col, column))
        else:
            entry.update(_frequency_stats(col))
        per_column[column.name] = entry
        warnings.extend(_column_warnings(column.name, column.role, entry, rows))
        warnings.extend(_meaning_warnings(column, col, entry))
        if column.type == "categorical" and ambiguous_dates(col):
            warnings.append(
                f"column {column.name!r} looks like dates, but no day is above 12 to tell "
                "dd/mm/yyyy from mm/dd/yyyy, so it stays text: write the dates as yyyy-mm-dd"
            )
    profile: dict[str, Any] = {
        "rows": rows,
        "columns": len(schema.columns),
        "features": len(schema.features),
        "target": schema.target,
        "task": schema.task,
        "classes": list(schema.classes) if schema.classes is not None else None,
        "per_column": per_column,
    }
    if schema.classes is not None:
        profile["class_balance"], imbalance = _class_balance(table, schema, imbalance_ratio)
        warnings = imbalance + warnings
    profile["warnings"] = warnings
    return profile
