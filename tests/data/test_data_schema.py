"""Schema inference: roles, types, target, task, classes; and its JSON form."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from mlcycle.data import (
    ColumnSchema,
    CsvSource,
    Schema,
    SklearnSource,
    canonicalize,
    infer_schema,
)
from mlcycle.errors import DataError
from mlcycle.spec import DatasetSpec

SPEC = DatasetSpec()


def roles(schema: Schema) -> dict[str, str]:
    return {c.name: c.role for c in schema.columns}


def types(schema: Schema) -> dict[str, str]:
    return {c.name: c.type for c in schema.columns}


def test_breast_cancer(cancer_table: pa.Table) -> None:
    schema = infer_schema(cancer_table, SPEC, SklearnSource("breast_cancer").hints)
    assert schema.target == "target"
    assert schema.task == "binary"
    assert schema.classes == ("benign", "malignant")
    assert len(schema.features) == 30
    assert set(types(schema).values()) == {"numeric", "categorical"}
    assert schema.column("target").type == "categorical"


def test_digits_image_shape_from_hint_and_task() -> None:
    source = SklearnSource("digits")
    schema = infer_schema(source.read(), SPEC, source.hints)
    assert schema.column("image") == ColumnSchema("image", "image", "feature", (8, 8))
    assert schema.task == "multiclass"
    assert schema.classes == tuple(str(i) for i in range(10))


def test_diabetes_is_regression() -> None:
    schema = infer_schema(SklearnSource("diabetes").read(), SPEC, {})
    assert schema.target == "target"  # found by name, no hint needed
    assert schema.task == "regression"
    assert schema.classes is None


@pytest.mark.parametrize("name", ["label", "Y", "CLASS", "Outcome", "target"])
def test_target_found_by_name(name: str) -> None:
    table = pa.table({"x": [1.0, 2.0, 3.0], name: ["a", "b", "a"]})
    assert infer_schema(table, SPEC).target == name


def test_target_precedence_spec_then_hint_then_name() -> None:
    table = pa.table({"label": ["a", "b"], "other": ["u", "v"], "third": ["p", "q"]})
    assert infer_schema(table, SPEC).target == "label"
    assert infer_schema(table, SPEC, {"target": "other"}).target == "other"
    assert infer_schema(table, DatasetSpec(target="third"), {"target": "other"}).target == "third"
    by_role = infer_schema(table, DatasetSpec(roles={"third": "target"}))
    assert by_role.target == "third"
    assert roles(by_role)["label"] == "feature"
    not_target = infer_schema(table, DatasetSpec(roles={"label": "feature"}))
    assert not_target.target is None and not_target.task is None


def test_no_target_means_no_task() -> None:
    schema = infer_schema(pa.table({"a": [1, 2], "b": [3, 4]}), SPEC)
    assert (schema.target, schema.task, schema.classes) == (None, None, None)
    assert schema.features == ("a", "b")


def test_id_columns_need_unique_values() -> None:
    table = pa.table(
        {
            "id": [1, 2, 3, 4],
            "user_id": ["u1", "u1", "u2", "u3"],  # repeats: a feature, not a key
            "order_ID": ["a", "b", "c", "d"],
            "paid": [0.1, 0.2, 0.3, 0.4],
        }
    )
    assert roles(infer_schema(table, SPEC)) == {
        "id": "id",
        "user_id": "feature",
        "order_ID": "id",
        "paid": "feature",
    }


def test_timestamps_typed_or_iso_text(tmp_path: Path) -> None:
    table = pa.table(
        {
            "at": pa.array([datetime(2024, 1, 1, tzinfo=UTC)] * 2, pa.timestamp("ns", "UTC")),
            "day": pa.array([date(2024, 1, 1), date(2024, 1, 2)]),
            "x": [1, 2],
        }
    )
    schema = infer_schema(table, SPEC)
    assert schema.timestamps == ("at", "day")
    assert types(schema)["at"] == "numeric"
    (tmp_path / "t.csv").write_text("when,x\n2024-01-01 10:00:00,1\n2024-01-02,2\n")
    text = infer_schema(CsvSource(tmp_path / "t.csv").read(), SPEC)
    assert text.timestamps == ("when",)


def test_sensitive_only_when_the_spec_says_so() -> None:
    table = pa.table({"race": ["a", "b"], "sex": ["f", "m"], "x": [1.0, 2.0]})
    assert infer_schema(table, SPEC).sensitive == ()
    schema = infer_schema(table, DatasetSpec(roles={"race": "sensitive", "sex": "sensitive"}))
    assert schema.sensitive == ("race", "sex")
    assert schema.features == ("x",)


def test_text_types_from_values(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text(
        "n,f,b,c,few\n1,1.5,true,red,1\n2,2,False,blue,x\n3,,TRUE,red,y\n"
    )
    schema = infer_schema(CsvSource(tmp_path / "d.csv").read(), SPEC)
    assert types(schema) == {
        "n": "numeric",
        "f": "numeric",
        "b": "boolean",
        "c": "categorical",
        "few": "categorical",  # one number in three is not "mostly numbers"
    }


def test_spec_types_override() -> None:
    table = pa.table({"zip": [2139, 10001], "flag": [0, 1], "y": [1.5, 2.5]})
    schema = infer_schema(table, DatasetSpec(types={"zip": "categorical", "flag": "boolean"}))
    assert types(schema) == {"zip": "categorical", "flag": "boolean", "y": "numeric"}


@pytest.mark.parametrize(
    ("size", "hint", "shape"),
    [
        (64, None, (8, 8)),
        (784, None, (28, 28)),
        (12, None, (12,)),
        (12, [3, 4], (3, 4)),
        (12, [5, 5], (12,)),
    ],
)
def test_image_shapes(size: int, hint: list[int] | None, shape: tuple[int, ...]) -> None:
    pixels = pa.array(np.zeros(2 * size, dtype=np.uint8))
    table = pa.table({"img": pa.FixedSizeListArray.from_arrays(pixels, size)})
    hints = {"image_shape": hint} if hint else {}
    assert infer_schema(table, SPEC, hints).column("img").shape == shape


def test_variable_lists_of_equal_length_are_images() -> None:
    table = pa.table({"img": [[1, 2, 3, 4], [5, 6, 7, 8]]})
    assert infer_schema(table, SPEC).column("img") == ColumnSchema(
        "img", "image", "feature", (2, 2)
    )


@pytest.mark.parametrize(
    ("values", "task", "classes"),
    [
        ([0.5, 1.25, 2.0, 0.5], "regression", None),
        ([0, 1, 1, 0], "binary", ("0", "1")),
        ([True, False, True, True], "binary", ("false", "true")),
        (["b", "a", "c", "a"], "multiclass", ("a", "b", "c")),
        ([2, 10, 1, 2], "multiclass", ("1", "2", "10")),  # numbers sort as numbers
        ([1.0, 2.0, 3.0, 1.0], "multiclass", ("1", "2", "3")),
        (list(range(51)), "regression", None),
        (list(range(50)), "multiclass", tuple(str(i) for i in range(50))),
    ],
)
def test_task_and_classes_inferred(
    values: list[object], task: str, classes: tuple[str, ...] | None
) -> None:
    schema = infer_schema(pa.table({"y": values}), SPEC)
    assert (schema.task, schema.classes) == (task, classes)


def test_classes_from_csv_text_sort_like_numbers(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("x,y\n1,10\n2,2\n3,1\n4,2\n")
    schema = infer_schema(CsvSource(tmp_path / "d.csv").read(), SPEC)
    assert schema.classes == ("1", "2", "10")


def test_spec_task_wins() -> None:
    table = pa.table({"y": [0, 1, 2, 3, 4, 0]})
    assert infer_schema(table, DatasetSpec(task="regression")).task == "regression"
    assert infer_schema(table, DatasetSpec(task="regression")).classes is None


def test_schema_round_trips_through_json() -> None:
    source = SklearnSource("digits")
    schema = infer_schema(source.read(), DatasetSpec(), source.hints)
    again = Schema.from_dict(json.loads(json.dumps(schema.to_dict())))
    assert again == schema
    assert again.column("image").shape == (8, 8)


def test_schema_properties() -> None:
    schema = Schema(
        (
            ColumnSchema("id", "numeric", "id"),
            ColumnSchema("at", "numeric", "timestamp"),
            ColumnSchema("x", "numeric", "feature"),
            ColumnSchema("race", "categorical", "sensitive"),
            ColumnSchema("note", "categorical", "ignore"),
            ColumnSchema("y", "boolean", "target"),
        ),
        target="y",
        task="binary",
        classes=("false", "true"),
    )
    assert schema.names == ("id", "at", "x", "race", "note", "y")
    assert (schema.features, schema.sensitive, schema.ids) == (("x",), ("race",), ("id",))
    assert (schema.timestamps, schema.ignored) == (("at",), ("note",))
    with pytest.raises(KeyError):
        schema.column("nope")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"columns": "x"}, "schema: expected a mapping with a 'columns' list"),
        ({"columns": [], "task": "ranking"}, "schema: task 'ranking': expected one of"),
        ({"columns": [{"name": "x"}]}, "schema column {'name': 'x'}: missing 'type'"),
        (
            {"columns": [{"name": "x", "type": "text", "role": "feature"}]},
            "schema column 'x': type 'text' / role 'feature': expected a type in",
        ),
    ],
)
def test_schema_from_bad_dict(data: dict[str, object], message: str) -> None:
    with pytest.raises(DataError) as info:
        Schema.from_dict(data)
    assert str(info.value).startswith(message)


def _dates_csv(path: Path, values: list[str]) -> pa.Table:
    rows = [f"{v},{i % 7},{'ab'[i % 2]}" for i, v in enumerate(values)]
    path.write_text("when,x,y\n" + "\n".join(rows) + "\n")
    return CsvSource(path).read()


@pytest.mark.parametrize(
    ("form", "write"),
    [
        ("dd/mm/yyyy", lambda d: d.strftime("%d/%m/%Y")),
        ("d.m.yyyy", lambda d: f"{d.day}.{d.month}.{d.year}"),
        ("mm/dd/yyyy", lambda d: d.strftime("%m/%d/%Y")),
        ("dd/mm/yyyy hh:mm", lambda d: d.strftime("%d/%m/%Y 10:%M")),
        ("yyyy/mm/dd", lambda d: d.strftime("%Y/%m/%d")),
        ("yyyy-mm-dd hh:mm:ss", lambda d: d.strftime("%Y-%m-%d %H:%M:%S")),
    ],
)
def test_common_date_forms_become_timestamps(
    tmp_path: Path, form: str, write: Callable[[datetime], str]
) -> None:
    days = [datetime(2023, 1, 1) + timedelta(days=i) for i in range(400)]
    raw = _dates_csv(tmp_path / "d.csv", [write(d) for d in days])
    schema = infer_schema(raw, SPEC)
    assert (schema.column("when").type, schema.column("when").role) == ("numeric", "timestamp")
    stamps = canonicalize(raw, schema).column("when").to_pylist()
    assert [s.date() for s in stamps] == [d.date() for d in days], form


def test_dates_that_do_not_say_day_or_month_first_stay_text(tmp_path: Path) -> None:
    raw = _dates_csv(tmp_path / "d.csv", ["01/02/2024", "03/04/2024", "05/06/2024"] * 10)
    assert types(infer_schema(raw, SPEC))["when"] == "categorical"


@pytest.mark.parametrize("bad", ["31/02/2024", "13/13/2024", "32/01/2024", "15/01/2024 25:00"])
def test_impossible_dates_are_not_dates(tmp_path: Path, bad: str) -> None:
    raw = _dates_csv(tmp_path / "d.csv", ["15/01/2024", bad, "20/03/2024"] * 10)
    assert types(infer_schema(raw, SPEC))["when"] == "categorical"
