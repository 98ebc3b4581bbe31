"""Canonical types, and a fingerprint that follows content and nothing else."""

from __future__ import annotations

import time
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcycle.data import canonicalize, fingerprint, infer_schema, prepare
from mlcycle.errors import DataError
from mlcycle.spec import DatasetSpec

SPEC = DatasetSpec()
# Stored versions are matched by fingerprint: changing the algorithm is a migration.
PINNED = "7af72864c84b65b8b6b524275565bff7045d72a5ea3e8a95610c0a469984684c"


def canonical(table: pa.Table, spec: DatasetSpec = SPEC) -> pa.Table:
    return canonicalize(table, infer_schema(table, spec))


def test_types_are_normalised() -> None:
    table = pa.table(
        {
            "i8": pa.array([1, 2, None], pa.int8()),
            "u32": pa.array([1, 2, 3], pa.uint32()),
            "f32": pa.array([0.5, float("nan"), 1.5], pa.float32()),
            "big": pa.array(["x", "y", None], pa.large_string()),
            "dict": pa.array(["a", "b", "a"]).dictionary_encode(),
            "b": [True, False, None],
            "ns": pa.array([datetime(2024, 1, 1, 12)] * 3, pa.timestamp("ns", tz="Europe/Paris")),
            "d": pa.array([date(2024, 1, 1)] * 3),
            "img": [[1, 2, 3, 4], None, [5, 6, 7, 8]],
            "numtext": ["1", "2.5", None],
        }
    )
    out = canonical(table)
    assert dict(zip(out.column_names, out.schema.types, strict=True)) == {
        "i8": pa.int64(),
        "u32": pa.int64(),
        "f32": pa.float64(),
        "big": pa.string(),
        "dict": pa.string(),
        "b": pa.bool_(),
        "ns": pa.timestamp("us", tz="Europe/Paris"),
        "d": pa.timestamp("us"),
        "img": pa.list_(pa.float32(), 4),
        "numtext": pa.float64(),
    }
    assert out.column("f32").to_pylist() == [0.5, None, 1.5]  # NaN is missing
    assert out.column("img").to_pylist() == [[1.0, 2.0, 3.0, 4.0], None, [5.0, 6.0, 7.0, 8.0]]
    assert out.schema.metadata is None


def test_categorical_numbers_become_text_and_csv_keeps_leading_zeros(tmp_path: Path) -> None:
    spec = DatasetSpec(types={"zip": "categorical"})
    assert canonical(pa.table({"zip": [2139, 10001]}), spec).column("zip").to_pylist() == [
        "2139",
        "10001",
    ]
    (tmp_path / "z.csv").write_text("zip,y\n02139,1.5\n10001,2.5\n02139,3.5\n")
    data = prepare(tmp_path / "z.csv", spec)
    assert data.table.column("zip").to_pylist() == ["02139", "10001", "02139"]


def test_booleans_from_zero_one_and_text() -> None:
    table = pa.table({"a": [0, 1, 1], "b": ["True", "false", None]})
    out = canonical(table, DatasetSpec(types={"a": "boolean"}))
    assert out.column("a").to_pylist() == [False, True, True]
    assert out.column("b").to_pylist() == [True, False, None]


def _mixed_frame(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "k": rng.integers(-5, 5, n),
            "c": rng.choice(["red", "green", "blue, dark", 'say "hi"', "ünï"], n),
            "b": rng.random(n) > 0.5,
            "t": pd.date_range("2024-01-01", periods=n, freq="37min"),
            "y": rng.choice(["yes", "no"], n),
        }
    )
    frame.loc[[3, 50], "x"] = np.nan
    frame.loc[[4, 60], "c"] = None
    return frame


@pytest.mark.parametrize("frame_kind", ["cancer", "mixed"])
def test_fingerprint_same_for_csv_parquet_row_groups_and_names(
    tmp_path: Path, cancer_frame: pd.DataFrame, frame_kind: str
) -> None:
    frame = cancer_frame if frame_kind == "cancer" else _mixed_frame()
    frame.to_csv(tmp_path / "first.csv", index=False)
    frame.to_csv(tmp_path / "renamed copy.csv", index=False)
    frame.to_parquet(tmp_path / "one.parquet", row_group_size=10_000)
    pq.write_table(pa.Table.from_pandas(frame), tmp_path / "small.parquet", row_group_size=37)
    parts = tmp_path / "parts"
    parts.mkdir()
    half = len(frame) // 2
    frame.iloc[:half].to_csv(parts / "0.csv", index=False)
    frame.iloc[half:].to_csv(parts / "1.csv", index=False)
    sources: list[object] = [
        tmp_path / "first.csv",
        tmp_path / "renamed copy.csv",
        tmp_path / "one.parquet",
        tmp_path / "small.parquet",
        parts,
        frame,
    ]
    prints = {str(s)[-20:]: prepare(s, SPEC).fingerprint for s in sources}
    assert len(set(prints.values())) == 1, prints


def test_fingerprint_changes_with_any_single_value(cancer_frame: pd.DataFrame) -> None:
    base = prepare(cancer_frame, SPEC).fingerprint
    changed = cancer_frame.copy()
    changed["mean_smoothness"] = changed["mean_smoothness"].where(
        changed.index != 300, changed["mean_smoothness"] + 1e-9
    )
    assert prepare(changed, SPEC).fingerprint != base
    relabelled = cancer_frame.copy()
    relabelled.loc[0, "target"] = (
        "benign" if relabelled.loc[0, "target"] == "malignant" else "malignant"
    )
    assert prepare(relabelled, SPEC).fingerprint != base
    renamed = cancer_frame.rename(columns={"mean_radius": "radius"})
    assert prepare(renamed, SPEC).fingerprint != base
    reordered = cancer_frame.iloc[::-1].reset_index(drop=True)
    assert prepare(reordered, SPEC).fingerprint != base


def test_fingerprint_tells_missing_from_zero_and_splits_strings_right() -> None:
    def fp(**cols: list[object]) -> str:
        return fingerprint(pa.table(cols))

    assert fp(x=[0, 1]) != fp(x=[None, 1])
    assert fp(s=["ab", "c"]) != fp(s=["a", "bc"])
    assert fp(s=["", "x"]) != fp(s=[None, "x"])
    assert fp(a=[1], b=[2]) != fp(b=[2], a=[1])
    assert fp(x=[1.0]) != fp(x=pa.array([1], pa.int64()))


def test_fingerprint_ignores_chunks_and_slices() -> None:
    table = canonical(
        pa.table(
            {
                "x": [1.5, None, 3.0, 4.0],
                "s": ["a", None, "ccc", ""],
                "b": [True, None, False, True],
                "img": [[1, 2], [3, 4], None, [7, 8]],
            }
        )
    )
    chunked = pa.concat_tables([table.slice(0, 1), table.slice(1, 2), table.slice(3)])
    assert chunked.column("s").num_chunks == 3
    assert fingerprint(chunked) == fingerprint(table)
    padded = pa.concat_tables([table, table]).slice(4).combine_chunks()
    assert fingerprint(padded) == fingerprint(table)


def test_fingerprint_is_pinned() -> None:
    table = pa.table({"x": pa.array([1, None, 3], pa.int64()), "s": ["a", None, "bc"]})
    assert fingerprint(table) == PINNED


def test_fingerprint_needs_canonical_types() -> None:
    with pytest.raises(DataError, match=r"column 'x' has type int8, which is not canonical"):
        fingerprint(pa.table({"x": pa.array([1], pa.int8())}))


def test_fingerprint_of_70000_images_is_fast() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, 70_000 * 784, dtype=np.uint8)
    raw = pa.table(
        {
            "image": pa.FixedSizeListArray.from_arrays(pa.array(pixels), 784),
            "label": rng.integers(0, 10, 70_000),
        }
    )
    start = time.perf_counter()
    table = canonical(raw)
    digest = fingerprint(table)
    assert time.perf_counter() - start < 3.0
    assert table.schema.field("image").type == pa.list_(pa.float32(), 784)
    flipped = pixels.copy()
    flipped[-1] ^= 1
    raw2 = raw.set_column(0, "image", pa.FixedSizeListArray.from_arrays(pa.array(flipped), 784))
    assert fingerprint(canonical(raw2)) != digest
