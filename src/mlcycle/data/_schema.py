"""What each column of a dataset means: its type, its role, the learning task.

Inference gives a useful answer for ordinary tables with no configuration;
the project spec overrides any part of it. The result is a small frozen value
that is stored with every dataset version as JSON.

Roles are inferred as follows, then ``spec.roles``/``spec.target`` win:

* **target**: ``spec.target``, else the source's hint, else the first column
  named ``target``, ``label``, ``y``, ``class`` or ``outcome`` (any case);
* **id**: a column named ``id`` or ending in ``_id`` whose values are all
  present and unique (a row key is not a feature: it would only memorise);
* **timestamp**: a column of dates or date-times (typed, or ISO 8601 text);
* **sensitive**: never guessed. Which attributes are protected is a legal and
  ethical decision, so only ``spec.roles`` makes a column sensitive;
* everything else is a **feature**.

Timestamps are ordered instants: their :data:`~mlcycle.spec.ColumnType` is
``numeric`` and their canonical Arrow type is ``timestamp[us]``.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from mlcycle.data._canonical import canonical_column
from mlcycle.data._parse import (
    MOSTLY_NUMBERS,
    bad_values_error,
    boolean_mask,
    number_mask,
    to_timestamp,
)
from mlcycle.errors import DataError
from mlcycle.spec import ColumnRole, ColumnType, DatasetSpec, DataSpec, Task

__all__ = ["MAX_CLASSES", "ColumnSchema", "Schema", "check_classes", "infer_schema"]

#: The most classes a classification target may have unless ``data.max_classes`` says otherwise.
MAX_CLASSES: int = DataSpec.model_fields["max_classes"].default

_TARGET_NAMES = ("target", "label", "y", "class", "outcome")
_MAX_INFERRED_CLASSES = 50
_SHOWN_COLUMNS = 10
_TYPES = typing.get_args(ColumnType)
_ROLES = typing.get_args(ColumnRole)
_TASKS = typing.get_args(Task)


@dataclass(frozen=True)
class ColumnSchema:
    """One column: its name, type, role and, for images, the pixel shape.

    Example:
        >>> ColumnSchema("image", "image", "feature", (8, 8)).to_dict()
        {'name': 'image', 'type': 'image', 'role': 'feature', 'shape': [8, 8]}
    """

    name: str
    type: ColumnType
    role: ColumnRole
    shape: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able mapping; :meth:`from_dict` reads it back."""
        shape = list(self.shape) if self.shape is not None else None
        return {"name": self.name, "type": self.type, "role": self.role, "shape": shape}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnSchema:
        """Read what :meth:`to_dict` wrote.

        Raises:
            DataError: the mapping is not a column schema.
        """
        try:
            name, kind, role = str(data["name"]), data["type"], data["role"]
            shape = data.get("shape")
        except (KeyError, TypeError) as exc:
            raise DataError(f"schema column {data!r}: missing {exc}") from None
        if kind not in _TYPES or role not in _ROLES:
            raise DataError(
                f"schema column {name!r}: type {kind!r} / role {role!r}: "
                f"expected a type in {_TYPES} and a role in {_ROLES}"
            )
        return cls(name, kind, role, tuple(int(s) for s in shape) if shape is not None else None)


@dataclass(frozen=True)
class Schema:
    """The columns of a dataset, its target, task and classes.

    ``classes`` are the target's distinct values as strings, sorted (numbers
    numerically), for classification; ``None`` for regression or no target.

    Example:
        >>> schema = Schema(
        ...     (ColumnSchema("x", "numeric", "feature"), ColumnSchema("y", "categorical", "target")),
        ...     target="y", task="binary", classes=("a", "b"))
        >>> schema.features, Schema.from_dict(schema.to_dict()) == schema
        (('x',), True)
    """

    columns: tuple[ColumnSchema, ...]
    target: str | None
    task: Task | None
    classes: tuple[str, ...] | None

    def _with_role(self, role: ColumnRole) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.role == role)

    @property
    def names(self) -> tuple[str, ...]:
        """Every column name, in table order."""
        return tuple(c.name for c in self.columns)

    @property
    def features(self) -> tuple[str, ...]:
        """Columns a model reads."""
        return self._with_role("feature")

    @property
    def sensitive(self) -> tuple[str, ...]:
        """Protected attributes: kept out of the model, used to audit fairness."""
        return self._with_role("sensitive")

    @property
    def ids(self) -> tuple[str, ...]:
        """Row keys."""
        return self._with_role("id")

    @property
    def timestamps(self) -> tuple[str, ...]:
        """Columns saying when a row happened."""
        return self._with_role("timestamp")

    @property
    def ignored(self) -> tuple[str, ...]:
        """Columns kept in the data but used by nothing."""
        return self._with_role("ignore")

    def column(self, name: str) -> ColumnSchema:
        """The column called ``name``.

        Raises:
            KeyError: there is no such column.
        """
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able mapping; :meth:`from_dict` reads it back exactly."""
        return {
            "columns": [c.to_dict() for c in self.columns],
            "target": self.target,
            "task": self.task,
            "classes": list(self.classes) if self.classes is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        """Read what :meth:`to_dict` wrote.

        Raises:
            DataError: the mapping is not a schema.
        """
        if not isinstance(data, dict) or not isinstance(data.get("columns"), list):
            raise DataError("schema: expected a mapping with a 'columns' list")
        task = data.get("task")
        if task is not None and task not in _TASKS:
            raise DataError(f"schema: task {task!r}: expected one of {_TASKS}")
        classes = data.get("classes")
        return cls(
            columns=tuple(ColumnSchema.from_dict(c) for c in data["columns"]),
            target=data.get("target"),
            task=task,
            classes=tuple(str(c) for c in classes) if classes is not None else None,
        )


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN_COLUMNS])
    more = len(names) - _SHOWN_COLUMNS
    return shown + (f" (and {more} more)" if more > 0 else "")


def _check_named(table: pa.Table, spec: DatasetSpec) -> None:
    names = table.column_names
    if spec.target is not None and spec.target not in names:
        raise DataError(
            f"target column {spec.target!r} is not in the data; available columns: "
            f"{_listing(names)}"
        )
    for field, mapping in (("roles", spec.roles), ("types", spec.types)):
        for name in mapping:
            if name not in names:
                raise DataError(
                    f"{field}: column {name!r} is not in the data; "
                    f"available columns: {_listing(names)}"
                )


def _pick_target(table: pa.Table, spec: DatasetSpec, hints: dict[str, Any]) -> str | None:
    if spec.target is not None:
        return spec.target
    named = [c for c, r in spec.roles.items() if r == "target"]
    if named:
        return named[0]
    taken = set(spec.roles)
    hinted = hints.get("target")
    if isinstance(hinted, str) and hinted in table.column_names and hinted not in taken:
        return hinted
    by_lower = {n.lower(): n for n in reversed(table.column_names) if n not in taken}
    return next((by_lower[t] for t in _TARGET_NAMES if t in by_lower), None)


def _decoded(col: Any) -> Any:
    if pat.is_dictionary(col.type):
        return pc.cast(col, col.type.value_type)
    return col


def _is_text(kind: pa.DataType) -> bool:
    return bool(pat.is_string(kind) or pat.is_large_string(kind))


def _infer_type(name: str, col: Any, declared: ColumnType | None) -> tuple[ColumnType, bool]:
    """The column's type, and whether it holds points in time."""
    kind = col.type
    if pat.is_temporal(kind) and not pat.is_time(kind) and not pat.is_duration(kind):
        return declared or "numeric", declared in (None, "numeric")
    is_list = pat.is_list(kind) or pat.is_large_list(kind) or pat.is_fixed_size_list(kind)
    if declared == "image" and not is_list:
        raise DataError(
            f"column {name!r} is typed image but holds {kind}; expected a list of numbers per row"
        )
    if declared is not None:
        # Declared numeric text may still be ISO dates: canonicalize makes them timestamps.
        temporal = (
            declared == "numeric"
            and _is_text(kind)
            and not number_mask(col)[_valid(col)].all()
            and to_timestamp(col) is not None
        )
        return declared, temporal
    if pat.is_integer(kind) or pat.is_floating(kind) or pat.is_decimal(kind):
        return "numeric", False
    if pat.is_boolean(kind):
        return "boolean", False
    if is_list:
        value = kind.value_type
        if pat.is_integer(value) or pat.is_floating(value):
            return "image", False
    if _is_text(kind):
        return _text_type(name, col)
    raise DataError(
        f"column {name!r}: unsupported type {kind}; expected numbers, text, booleans, "
        "date-times or lists of numbers (images), or set roles: {" + name + ": ignore}"
    )


def _valid(col: Any) -> np.ndarray[Any, np.dtype[np.bool_]]:
    return np.asarray(pc.is_valid(col).to_numpy(zero_copy_only=False), dtype=np.bool_)


def _text_type(name: str, col: Any) -> tuple[ColumnType, bool]:
    valid = _valid(col)
    numbers = number_mask(col)
    present, parsed = int(valid.sum()), int(numbers.sum())
    if parsed == present:
        return "numeric", False
    if parsed >= MOSTLY_NUMBERS * present:
        raise bad_values_error(
            name,
            col,
            valid & ~numbers,
            f"fix them, or set types: {{{name}: categorical}} in the spec if the column "
            "is meant to be categorical",
        )
    if int(boolean_mask(col).sum()) == present:
        return "boolean", False
    if to_timestamp(col) is not None:
        return "numeric", True
    return "categorical", False


def _image_shape(name: str, col: Any, hints: dict[str, Any]) -> tuple[int, ...]:
    kind = col.type
    if pat.is_fixed_size_list(kind):
        size = int(kind.list_size)
    else:
        lengths = pc.drop_null(pc.list_value_length(col))
        low, high = pc.min(lengths).as_py(), pc.max(lengths).as_py()
        if low != high:
            raise DataError(
                f"column {name!r}: images hold between {low} and {high} values; "
                "expected the same number in every row"
            )
        size = int(low)
    hinted = hints.get("image_shape")
    if hinted is not None and math.prod(int(s) for s in hinted) == size:
        return tuple(int(s) for s in hinted)
    side = math.isqrt(size)
    return (side, side) if side * side == size else (size,)


def _is_id(name: str, col: Any) -> bool:
    lower = name.lower()
    if not (lower == "id" or lower.endswith("_id")) or col.null_count:
        return False
    if pat.is_floating(col.type) or not (_is_text(col.type) or pat.is_integer(col.type)):
        return False
    return bool(pc.count_distinct(col).as_py() == len(col))


def _target_values(name: str, col: Any) -> Any:
    if col.null_count:
        raise DataError(
            f"target {name!r} is missing in {col.null_count} of {len(col)} rows; "
            "drop or fill those rows"
        )
    distinct = pc.unique(col)
    if len(distinct) == 1:
        raise DataError(
            f"target {name!r} has a single value {distinct[0].as_py()!r} in all "
            f"{len(col)} rows; expected at least two classes or a varying number"
        )
    return distinct


def _infer_task(kind: ColumnType, col: Any, distinct: Any) -> Task:
    if pat.is_floating(col.type):
        finite = pc.drop_null(pc.cast(distinct, pa.float64())).to_numpy()
        if not np.all(np.floor(finite) == finite):
            return "regression"
    if len(distinct) == 2:
        return "binary"
    if kind in ("categorical", "boolean") or len(distinct) <= _MAX_INFERRED_CLASSES:
        return "multiclass"
    return "regression"


def _classes(distinct: Any) -> tuple[str, ...]:
    ordered = pc.array_sort_indices(distinct)
    return tuple(str(v) for v in pc.cast(pc.take(distinct, ordered), pa.string()).to_pylist())


def _check_task(name: str, task: Task, kind: ColumnType, distinct: Any) -> None:
    if task == "binary" and len(distinct) != 2:
        raise DataError(
            f"task is binary but target {name!r} has {len(distinct)} distinct values; "
            "expected exactly 2"
        )
    if task == "regression" and kind != "numeric":
        raise DataError(
            f"task is regression but target {name!r} is {kind}; expected a numeric target"
        )


def infer_schema(table: pa.Table, spec: DatasetSpec, hints: dict[str, Any] | None = None) -> Schema:
    """Decide each column's type and role, the target and the task.

    ``spec`` wins over ``hints`` (what the source knows), which win over
    inference from the values. See the module docstring for the rules.

    Raises:
        DataError: the spec names a missing column, a column is all missing,
            a text column is mostly numbers with a few that are not, the
            target has missing values or a single value, or the task does not
            fit the target.

    Example:
        >>> import pyarrow as pa
        >>> table = pa.table({"id": [1, 2, 3], "x": [0.5, 1.5, 2.5], "label": ["a", "b", "a"]})
        >>> schema = infer_schema(table, DatasetSpec())
        >>> schema.target, schema.task, schema.classes, schema.ids
        ('label', 'binary', ('a', 'b'), ('id',))
    """
    hints = hints or {}
    _check_named(table, spec)
    target = _pick_target(table, spec, hints)
    hinted_types = cast(dict[str, ColumnType], hints.get("types") or {})
    columns = []
    for name in table.column_names:
        col = _decoded(table.column(name))
        role_set = spec.roles.get(name)
        if col.null_count == len(col) and len(col) > 0:
            if role_set == "ignore":
                continue
            raise DataError(
                f"column {name!r} is missing in all {len(col)} rows; "
                f"remove it or set roles: {{{name}: ignore}}"
            )
        try:
            kind, temporal = _infer_type(name, col, spec.types.get(name) or hinted_types.get(name))
        except DataError:
            if role_set == "ignore":
                continue
            raise
        if name == target and role_set not in (None, "target"):
            raise DataError(
                f"column {name!r} is the target but spec roles make it {role_set}; "
                "expected one or the other"
            )
        role: ColumnRole
        if name == target:
            role = "target"
        elif role_set is not None:
            role = role_set
        elif temporal:
            role = "timestamp"
        elif _is_id(name, col):
            role = "id"
        else:
            role = "feature"
        shape = _image_shape(name, col, hints) if kind == "image" else None
        columns.append(ColumnSchema(name, kind, role, shape))
    task: Task | None = None
    classes: tuple[str, ...] | None = None
    if target is not None:
        target_column = next(c for c in columns if c.name == target)
        target_kind = target_column.type
        if target_kind == "image":
            raise DataError(f"target {target!r} is an image column; expected one value per row")
        # Decide on canonical values, so that '10' read from a CSV sorts like 10.
        col = canonical_column(table.column(target), target_column)
        distinct = _target_values(target, col)
        task = spec.task or hints.get("task") or _infer_task(target_kind, col, distinct)
        _check_task(target, task, target_kind, distinct)
        if task != "regression":
            classes = _classes(distinct)
    elif spec.task is not None:
        raise DataError(
            f"task is {spec.task} but no target column was named or found; set target in the spec"
        )
    return Schema(tuple(columns), target, task, classes)


def check_classes(schema: Schema, rows: int, max_classes: int = MAX_CLASSES) -> None:
    """Refuse a classification target with more classes than can be learned or evaluated.

    More than ``max_classes`` classes, or more than half as many classes as
    rows (most classes then have a single row: nothing to learn from, nothing
    to test on), is almost always a quantity or a row key taken for a class.

    Raises:
        DataError: naming the target, its class count and the ways out.

    Example:
        >>> schema = Schema((ColumnSchema("ref", "categorical", "target"),), "ref",
        ...                 "multiclass", tuple(f"r{i}" for i in range(8)))
        >>> check_classes(schema, rows=10)
        Traceback (most recent call last):
        ...
        mlcycle.errors.DataError: target 'ref' has 8 classes in 10 rows; expected at most 1000 and at most half the rows (5): if it identifies rows, set roles: {ref: id} and choose another target; otherwise group its values into fewer classes
    """
    if schema.classes is None or schema.target is None:
        return
    count = len(schema.classes)
    if count <= 2 or (count <= max_classes and count <= rows / 2):
        return
    name = schema.target
    as_id = f"if it identifies rows, set roles: {{{name}: id}} and choose another target"
    if schema.column(name).type == "numeric":
        advice = f"if it is a quantity, set task: regression; {as_id}"
    else:
        advice = f"{as_id}; otherwise group its values into fewer classes"
    raise DataError(
        f"target {name!r} has {count} classes in {rows} rows; expected at most {max_classes} "
        f"and at most half the rows ({rows // 2}): {advice}"
    )
