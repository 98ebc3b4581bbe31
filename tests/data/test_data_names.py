"""Column names: a written-out row index is dropped, names a model cannot take are refused."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from mlcycle.data import prepare
from mlcycle.errors import DataError
from mlcycle.spec import DatasetSpec

SPEC = DatasetSpec()


def fails(source: object, spec: DatasetSpec = SPEC) -> str:
    with pytest.raises(DataError) as info:
        prepare(source, spec)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_csv_written_by_pandas_to_csv_loses_its_index(
    cancer_frame: pd.DataFrame, tmp_path: Path
) -> None:
    cancer_frame.to_csv(tmp_path / "cancer.csv")  # pandas' default: the index is kept
    data = prepare(tmp_path / "cancer.csv", SPEC)
    assert data.schema.names == tuple(cancer_frame.columns)
    assert data.profile["notes"] == [
        "dropped column '': it has no name and holds integers 0..568, a row index such as "
        "pandas' to_csv() writes (write with index=False, or name the column to keep it)"
    ]
    # The same rows without the index are the same data.
    cancer_frame.to_csv(tmp_path / "clean.csv", index=False)
    clean = prepare(tmp_path / "clean.csv", SPEC)
    assert clean.fingerprint == data.fingerprint and clean.profile["notes"] == []


def test_an_index_read_back_and_written_again(cancer_frame: pd.DataFrame, tmp_path: Path) -> None:
    subset = cancer_frame[cancer_frame["mean_radius"] > 15]  # index no longer 0..n-1
    subset.to_csv(tmp_path / "once.csv")
    read_back = pd.read_csv(tmp_path / "once.csv")
    assert read_back.columns[0] == "Unnamed: 0"
    read_back.to_csv(tmp_path / "twice.csv")  # two index columns: '' and 'Unnamed: 0'
    for source in (tmp_path / "once.csv", tmp_path / "twice.csv", read_back):
        data = prepare(source, SPEC, name="cancer")
        assert data.schema.names == tuple(cancer_frame.columns), source
    notes = prepare(tmp_path / "twice.csv", SPEC).profile["notes"]
    assert [n.split(":")[0] for n in notes] == ["dropped column ''", "dropped column 'Unnamed"]


def test_an_index_column_the_spec_names_is_kept(cancer_frame: pd.DataFrame) -> None:
    frame = cancer_frame.reset_index().rename(columns={"index": "Unnamed: 0"})
    data = prepare(frame, DatasetSpec(roles={"Unnamed: 0": "id"}))
    assert data.schema.ids == ("Unnamed: 0",)
    assert data.profile["notes"] == []


def test_an_unnamed_empty_column_from_trailing_commas_is_dropped(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("x,y,\n" + "".join(f"{i},{'ab'[i % 2]},\n" for i in range(20)))
    data = prepare(tmp_path / "d.csv", SPEC)
    assert data.schema.names == ("x", "y")
    assert data.profile["notes"] == ["dropped column '': it has no name and no values"]


def test_an_unnamed_column_holding_data_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("x,,y\n1,red,a\n2,blue,b\n3,red,a\n")
    assert fails(tmp_path / "d.csv") == (
        "column 1 has no name (header ''); name it in the header, or drop the column"
    )


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["x", "   ", "y"], "column 1 has no name (header '   '); name it in the header"),
        (["x", "a\tb", "y"], r"column 'a\tb': its name holds the control character '\t'; "),
        (["x", "a\x00", "y"], r"column 'a\x00': its name holds the control character '\x00'"),
        (["x", "_mlc_numeric", "y"], "column '_mlc_numeric': names starting with '_mlc_' are"),
        (
            ["Age", "age ", "y"],
            "columns 'Age' and 'age ' differ only in case, spacing or Unicode form; rename one",
        ),
        (
            ["caf\u00e9", "cafe\u0301", "y"],
            "columns 'caf\u00e9' and 'cafe\u0301' ('caf\\xe9' and 'cafe\\u0301') differ only",
        ),
        (["label", "y"], "feature column 'label' has the name of a model output"),
        (["value", "y"], "feature column 'value' has the name of a model output"),
    ],
)
def test_names_a_model_cannot_take_are_refused(names: list[str], message: str) -> None:
    columns = {name: [float(i % 3) for i in range(30)] for name in names[:-1]}
    table = pa.table({**columns, names[-1]: ["a", "b", "c"] * 10})
    spec = DatasetSpec(target=names[-1])
    assert fails(table, spec).startswith(message)


def test_a_target_or_an_ignored_column_may_have_any_name() -> None:
    table = pa.table(
        {"x": [float(i) for i in range(30)], "a\tb": ["n"] * 30, "label": ["a", "b", "c"] * 10}
    )
    data = prepare(table, DatasetSpec(roles={"a\tb": "ignore"}))
    assert (data.schema.target, data.schema.ignored) == ("label", ("a\tb",))


def test_odd_but_valid_names_are_kept() -> None:
    names = ["sepal length (cm)", "Größe", "日本", "x.y", "1st", " padded "]
    table = pa.table({**{n: [float(i) for i in range(30)] for n in names}, "y": ["a", "b"] * 15})
    assert prepare(table, SPEC).schema.features == tuple(names)
