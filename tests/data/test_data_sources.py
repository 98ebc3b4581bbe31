"""Sources: what each reads, how it names itself, how strings resolve to one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcycle.data import (
    SKLEARN_DATASETS,
    CsvSource,
    DataSource,
    FrameSource,
    ParquetSource,
    SklearnSource,
    resolve_source,
)
from mlcycle.errors import DataError


def test_breast_cancer_has_readable_names_and_class_names(cancer_table: pa.Table) -> None:
    assert cancer_table.num_rows == 569
    assert cancer_table.num_columns == 31
    assert cancer_table.column_names[0] == "mean_radius"
    assert "worst_concave_points" in cancer_table.column_names
    target = cancer_table.column("target").to_pylist()
    assert target.count("malignant") == 212
    assert target.count("benign") == 357


def test_sklearn_names_are_sanitised_only_when_needed() -> None:
    assert SklearnSource("iris").read().column_names == [
        "sepal_length_cm",
        "sepal_width_cm",
        "petal_length_cm",
        "petal_width_cm",
        "target",
    ]
    wine = SklearnSource("wine").read()
    assert "od280_od315_of_diluted_wines" in wine.column_names
    assert "malic_acid" in wine.column_names  # already fine: unchanged
    diabetes = SklearnSource("diabetes").read()
    assert diabetes.column_names == [
        "age",
        "sex",
        "bmi",
        "bp",
        "s1",
        "s2",
        "s3",
        "s4",
        "s5",
        "s6",
        "target",
    ]
    assert diabetes.schema.field("target").type == pa.float64()


def test_digits_is_one_image_column() -> None:
    source = SklearnSource("digits")
    table = source.read()
    assert table.column_names == ["image", "target"]
    assert table.schema.field("image").type == pa.list_(pa.float32(), 64)
    assert table.schema.field("target").type == pa.int64()
    assert sorted(set(table.column("target").to_pylist())) == list(range(10))
    assert source.hints["image_shape"] == [8, 8]
    first = np.asarray(table.column("image")[0].as_py()).reshape(8, 8)
    assert first[0, 0] == 0.0 and first.max() <= 16.0


@pytest.mark.parametrize("name", SKLEARN_DATASETS)
def test_sklearn_source_names_itself(name: str) -> None:
    source = SklearnSource(name)
    assert source.default_name == name
    assert source.describe() == f"sklearn:{name}"
    assert source.hints["target"] == "target"
    assert repr(source) == f"<SklearnSource sklearn:{name}>"


def test_csv_reads_text_and_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "pets v2.csv"
    path.write_text("age,kind\n3,cat\n,dog\nNA,\n")
    source = CsvSource(path)
    table = source.read()
    assert table.column("age").to_pylist() == ["3", None, None]
    assert table.column("kind").to_pylist() == ["cat", "dog", None]
    assert source.default_name == "pets_v2"
    assert source.describe() == f"csv:{path.resolve()}"


def test_csv_folder_concatenates_files_sorted_by_name(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text("x,y\n3,c\n")
    (tmp_path / "a.csv").write_text("y,x\na,1\nb,2\n")  # other column order: aligned
    (tmp_path / "notes.txt").write_text("ignored")
    source = resolve_source(tmp_path)
    assert isinstance(source, CsvSource)
    table = source.read()
    assert table.column_names == ["y", "x"]
    assert table.column("x").to_pylist() == ["1", "2", "3"]
    assert source.default_name == tmp_path.name


def test_parquet_folder_concatenates_and_widens_types(tmp_path: Path) -> None:
    pq.write_table(pa.table({"x": pa.array([1, 2], pa.int32())}), tmp_path / "part-0.parquet")
    pq.write_table(pa.table({"x": pa.array([3], pa.int64())}), tmp_path / "part-1.pq")
    source = resolve_source(str(tmp_path))
    assert isinstance(source, ParquetSource)
    assert source.read().column("x").to_pylist() == [1, 2, 3]


def test_parquet_drops_pandas_index_columns(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0]}, index=pd.Index([10, 20], name=None))
    frame.to_parquet(tmp_path / "f.parquet", index=True)
    assert ParquetSource(tmp_path / "f.parquet").read().column_names == ["x"]


def test_frame_source_mixed_object_column_becomes_text() -> None:
    frame = pd.DataFrame({"m": pd.Series([1, "a", None], dtype=object), 3: [1, 2, 3]})
    table = FrameSource(frame, "mixed").read()
    assert table.column_names == ["m", "3"]
    assert table.column("m").to_pylist() == ["1", "a", None]


def test_resolve_passes_sources_through_and_wraps_frames(cancer_frame: pd.DataFrame) -> None:
    source = SklearnSource("iris")
    assert resolve_source(source) is source
    wrapped = resolve_source(cancer_frame)
    assert isinstance(wrapped, FrameSource)
    assert wrapped.default_name == "frame"
    assert wrapped.describe() == "frame:frame"
    assert isinstance(resolve_source(pa.table({"x": [1]})), FrameSource)


def test_resolve_relative_paths_against_base_dir(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.csv").write_text("x\n1\n")
    source = resolve_source("data/d.csv", base_dir=tmp_path)
    assert isinstance(source, CsvSource)
    assert source.path == tmp_path / "data" / "d.csv"


def test_describe_strings_resolve_back(tmp_path: Path) -> None:
    pq.write_table(pa.table({"x": [1]}), tmp_path / "d.parquet")
    for original in (ParquetSource(tmp_path / "d.parquet"), SklearnSource("wine")):
        again = resolve_source(original.describe())
        assert type(again) is type(original)
        assert again.describe() == original.describe()


def test_base_source_defaults() -> None:
    class Ones(DataSource):
        def read(self) -> pa.Table:
            return pa.table({"x": [1]})

        @property
        def default_name(self) -> str:
            return "ones"

        def describe(self) -> str:
            return "ones:"

    assert Ones().hints == {}
    with pytest.raises(TypeError):
        DataSource()  # type: ignore[abstract]


def test_unknown_python_object_is_rejected() -> None:
    with pytest.raises(DataError, match=r"data source of type int: unknown kind of source"):
        resolve_source(42)
