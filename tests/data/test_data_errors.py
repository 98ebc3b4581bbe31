"""Every kind of bad input gives one DataError saying what, where and what was expected."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcycle.data import CsvSource, prepare
from mlcycle.errors import DataError
from mlcycle.spec import DatasetSpec, SplitSpec

SPEC = DatasetSpec()


def fails(source: object, spec: DatasetSpec = SPEC, base_dir: Path | None = None) -> str:
    with pytest.raises(DataError) as info:
        prepare(source, spec, base_dir=base_dir)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_file(tmp_path: Path) -> None:
    assert fails("x.csv", base_dir=tmp_path) == "data source 'x.csv': no such file or folder"
    assert (
        fails("no/folder", base_dir=tmp_path) == "data source 'no/folder': no such file or folder"
    )


def test_missing_file_read_directly(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"'.*gone\.csv': no such file or folder$"):
        CsvSource(tmp_path / "gone.csv").read()


def test_empty_files(tmp_path: Path) -> None:
    (tmp_path / "zero.csv").write_bytes(b"")
    (tmp_path / "header.csv").write_text("a,b\n")
    (tmp_path / "zero.parquet").write_bytes(b"")
    pq.write_table(pa.table({"a": pa.array([], pa.int64())}), tmp_path / "norows.parquet")
    assert fails("zero.csv", base_dir=tmp_path) == "data source 'zero.csv': file is empty (0 bytes)"
    assert "header.csv': file has a header but no rows" in fails(tmp_path / "header.csv")
    assert "zero.parquet': file is empty (0 bytes)" in fails(tmp_path / "zero.parquet")
    assert "norows.parquet': file has no rows" in fails(tmp_path / "norows.parquet")


def test_empty_frame() -> None:
    assert fails(pd.DataFrame()) == "data source frame 'frame': frame is empty (0 rows, 0 columns)"


@pytest.mark.parametrize("source", ["sklearn:nope", "foo.txt", "ftp:x"])
def test_unknown_source_lists_what_is_accepted(source: str) -> None:
    message = fails(source)
    assert message.startswith(f"data source {source!r}: unknown ")
    assert "breast_cancer, digits, wine, iris, diabetes" in message
    if not source.startswith("sklearn:"):
        assert ".csv, .parquet or .pq" in message


def test_folder_without_data_files(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hi")
    assert fails(tmp_path).endswith("folder has no .csv, .parquet or .pq files")


def test_folder_mixing_kinds(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x\n1\n")
    pq.write_table(pa.table({"x": [1]}), tmp_path / "b.parquet")
    assert fails(tmp_path).endswith("folder holds both .csv and .parquet files; expected one kind")


def test_folder_files_with_other_columns(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    (tmp_path / "b.csv").write_text("x,z\n1,2\n")
    message = fails(tmp_path)
    assert message == (
        f"data source {str(tmp_path)!r}, file 'b.csv': columns differ from 'a.csv' "
        "(missing: y; extra: z)"
    )


def test_folder_files_with_clashing_types(tmp_path: Path) -> None:
    pq.write_table(pa.table({"x": [1]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"x": ["one"]}), tmp_path / "b.parquet")
    assert fails(tmp_path).endswith(
        "file 'b.parquet': column 'x' is string but int64 in 'a.parquet'"
    )


def test_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
    (tmp_path / "fake.parquet").write_text("not parquet at all")
    assert "ragged.csv': not a readable CSV file: " in fails(tmp_path / "ragged.csv")
    assert "fake.parquet': not a readable Parquet file: " in fails(tmp_path / "fake.parquet")


def test_missing_target_column_lists_available(cancer_frame: pd.DataFrame) -> None:
    message = fails(cancer_frame, DatasetSpec(target="diagnosis"))
    assert message == (
        "target column 'diagnosis' is not in the data; available columns: mean_radius, "
        "mean_texture, mean_perimeter, mean_area, mean_smoothness, mean_compactness, "
        "mean_concavity, mean_concave_points, mean_symmetry, mean_fractal_dimension "
        "(and 21 more)"
    )


def test_spec_roles_naming_a_missing_column() -> None:
    message = fails("sklearn:iris", DatasetSpec(roles={"petal": "sensitive"}))
    assert message.startswith("roles: column 'petal' is not in the data; available columns: ")


def test_column_all_missing(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("x,empty,y\n1,,a\n2,,b\n3,,a\n")
    assert fails(tmp_path / "d.csv") == (
        "column 'empty' is missing in all 3 rows; remove it or set roles: {empty: ignore}"
    )
    ignored = prepare(tmp_path / "d.csv", DatasetSpec(roles={"empty": "ignore"}))
    assert ignored.schema.names == ("x", "y")


def test_float_column_of_nans_is_all_missing() -> None:
    frame = pa.table({"x": [float("nan")] * 3, "y": ["a", "b", "a"]})
    assert fails(frame).startswith("column 'x' is missing in all 3 rows")


def test_target_with_one_class() -> None:
    frame = pd.DataFrame({"x": [1, 2, 3], "label": ["yes", "yes", "yes"]})
    assert fails(frame) == (
        "target 'label' has a single value 'yes' in all 3 rows; "
        "expected at least two classes or a varying number"
    )


def test_target_with_missing_values(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("x,y\n1,a\n2,\n3,b\n4,NA\n")
    assert fails(tmp_path / "d.csv") == (
        "target 'y' is missing in 2 of 4 rows; drop or fill those rows"
    )


def test_mostly_numbers_with_garbage_names_rows_and_values(tmp_path: Path) -> None:
    # 200,000 rows: the bad values sit far past pyarrow's first CSV block.
    n = 200_000
    values = [str(i % 97) for i in range(n)]
    for row, bad in ((150_001, "abc"), (180_000, "?"), (199_999, "1,5")):
        values[row] = bad
    pd.DataFrame({"dose": values, "y": ["a", "b"] * (n // 2)}).to_csv(
        tmp_path / "d.csv", index=False
    )
    assert fails(tmp_path / "d.csv") == (
        "column 'dose': 3 values are not numbers (rows 150001, 180000, 199999: 'abc', '?', "
        "'1,5'); fix them, or set types: {dose: categorical} in the spec if the column is "
        "meant to be categorical"
    )
    allowed = prepare(tmp_path / "d.csv", DatasetSpec(types={"dose": "categorical"}))
    assert allowed.schema.column("dose").type == "categorical"
    assert allowed.table.column("dose")[150_001].as_py() == "abc"


def test_garbage_message_shows_five_rows_then_counts() -> None:
    values = [str(i) for i in range(100)]
    for i in range(0, 70, 10):
        values[i] = f"x{i}"
    message = fails(pd.DataFrame({"v": values, "y": ["a", "b"] * 50}))
    assert re.match(
        r"column 'v': 7 values are not numbers \(rows 0, 10, 20, 30, 40 and 2 more: "
        r"'x0', 'x10', 'x20', 'x30', 'x40'\); ",
        message,
    )


def test_spec_typed_numeric_text_that_is_not(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("size,y\nsmall,a\nlarge,b\n12,a\n")
    message = fails(tmp_path / "d.csv", DatasetSpec(types={"size": "numeric"}))
    assert message == (
        "column 'size': 2 values are not numbers (rows 0, 1: 'small', 'large'); the column "
        "is typed numeric; fix them, or set types: {size: categorical}"
    )


def test_spec_typed_boolean_that_is_not() -> None:
    frame = pd.DataFrame({"flag": ["true", "maybe", "false"], "y": [1.5, 2.5, 3.5]})
    assert fails(frame, DatasetSpec(types={"flag": "boolean"})) == (
        "column 'flag': 1 value is not true/false (row 1: 'maybe'); expected true or false"
    )


def test_unsupported_column_type() -> None:
    table = pa.table({"s": pa.array([{"a": 1}, {"a": 2}]), "y": [1.5, 2.5]})
    assert fails(table).startswith("column 's': unsupported type struct<a: int64>; expected")
    kept = prepare(pa.concat_tables([table] * 5), DatasetSpec(roles={"s": "ignore"}))
    assert kept.schema.names == ("y",)


def test_spec_typing_a_plain_column_as_image() -> None:
    assert fails("sklearn:iris", DatasetSpec(types={"sepal_width_cm": "image"})) == (
        "column 'sepal_width_cm' is typed image but holds double; "
        "expected a list of numbers per row"
    )


def test_target_that_the_roles_make_something_else() -> None:
    spec = DatasetSpec(target="target", roles={"target": "feature"})
    assert fails("sklearn:iris", spec) == (
        "column 'target' is the target but spec roles make it feature; expected one or the other"
    )


def test_images_of_different_sizes() -> None:
    table = pa.table({"img": [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]], "y": [0.5, 1.5]})
    assert fails(table) == (
        "column 'img': images hold between 2 and 4 values; expected the same number in every row"
    )


def test_images_with_missing_pixels() -> None:
    table = pa.table({"img": [[1.0, 2.0, 3.0, 4.0], [1.0, None, 3.0, 4.0]], "y": [0.5, 1.5]})
    assert fails(table) == (
        "column 'img': 1 images have missing pixel values (rows 1); "
        "expected a number for every pixel"
    )


def test_bad_dataset_name() -> None:
    with pytest.raises(DataError, match=r"^dataset name 'my data': expected letters, digits"):
        prepare("sklearn:iris", SPEC, name="my data")


def test_no_source_at_all() -> None:
    assert fails(None) == "no data source: pass one, or set source in the dataset's spec"


def test_task_that_does_not_fit_the_target() -> None:
    assert fails("sklearn:iris", DatasetSpec(task="binary")) == (
        "task is binary but target 'target' has 3 distinct values; expected exactly 2"
    )
    assert fails("sklearn:iris", DatasetSpec(task="regression")) == (
        "task is regression but target 'target' is categorical; expected a numeric target"
    )
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    assert fails(frame, DatasetSpec(task="binary")).startswith(
        "task is binary but no target column was named or found"
    )


def test_too_few_rows_to_split() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0], "y": [0.5, 1.5]})
    assert fails(frame) == (
        "split: 2 rows cannot give 1 validation and 1 test rows and still leave training "
        "rows; expected at least 3 rows, or smaller validation/test shares"
    )


def test_time_split_without_a_time_column() -> None:
    spec = DatasetSpec(split=SplitSpec(method="time"))
    assert fails("sklearn:iris", spec) == (
        "split: method 'time' needs one timestamp column; found none: "
        "set split.time_column in the spec"
    )
    bad = DatasetSpec(split=SplitSpec(method="time", time_column="when"))
    assert fails("sklearn:iris", bad).startswith("split: time_column 'when' is not in the data")
    text = DatasetSpec(split=SplitSpec(method="time", time_column="target"))
    assert fails("sklearn:iris", text) == (
        "split: time column 'target' holds string; expected date-times or numbers"
    )


def test_a_target_with_one_row_per_class_is_refused() -> None:
    # The reported case: a unique reference picked as the target (K x K matrices later).
    frame = pd.DataFrame({"x": np.arange(2000.0), "ref": [f"R{i:05d}" for i in range(2000)]})
    assert fails(frame, DatasetSpec(target="ref")) == (
        "target 'ref' has 2000 classes in 2000 rows; expected at most 1000 and at most half "
        "the rows (1000): if it identifies rows, set roles: {ref: id} and choose another "
        "target; otherwise group its values into fewer classes"
    )


def test_more_classes_than_the_limit_are_refused_unless_raised() -> None:
    codes = [i % 1200 for i in range(3000)]  # 1,200 classes of 2-3 rows
    frame = pd.DataFrame({"x": np.arange(3000.0), "code": codes})
    spec = DatasetSpec(target="code", task="multiclass")
    assert fails(frame, spec) == (
        "target 'code' has 1200 classes in 3000 rows; expected at most 1000 and at most half "
        "the rows (1500): if it is a quantity, set task: regression; if it identifies rows, "
        "set roles: {code: id} and choose another target"
    )
    data = prepare(frame, spec, max_classes=1200)
    assert len(data.schema.classes or ()) == 1200
    assert prepare(frame, DatasetSpec(target="code", task="regression")).schema.classes is None


def test_the_class_limit_comes_from_the_spec() -> None:
    from mlcycle.spec import Spec

    assert Spec().data.max_classes == 1000
    assert Spec.model_validate({"data": {"max_classes": 5000}}).data.max_classes == 5000
