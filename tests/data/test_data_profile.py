"""Profiles: the numbers people read before training, checked against real data."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlcycle.data import canonicalize, infer_schema, prepare, profile_table
from mlcycle.spec import DatasetSpec

SPEC = DatasetSpec()


def profile_of(table: pa.Table, spec: DatasetSpec = SPEC, ratio: float = 3.0) -> dict[str, Any]:
    schema = infer_schema(table, spec)
    return profile_table(canonicalize(table, schema), schema, ratio)


def test_breast_cancer_profile(cancer_frame: pd.DataFrame) -> None:
    profile = prepare("sklearn:breast_cancer", SPEC).profile
    assert profile["rows"] == 569
    assert profile["columns"] == 31
    assert profile["features"] == 30
    assert profile["target"] == "target"
    assert profile["task"] == "binary"
    assert profile["class_balance"] == {"malignant": 212, "benign": 357}
    assert profile["warnings"] == []  # 357 / 212 = 1.7 < 3
    radius = profile["per_column"]["mean_radius"]
    values = cancer_frame["mean_radius"].to_numpy()
    assert radius["type"] == "numeric" and radius["role"] == "feature"
    assert (radius["count"], radius["missing"], radius["missing_share"]) == (569, 0, 0.0)
    assert radius["min"] == pytest.approx(6.981)
    assert radius["max"] == pytest.approx(28.11)
    assert radius["mean"] == pytest.approx(values.mean())
    assert radius["std"] == pytest.approx(values.std(ddof=1))
    assert radius["quantiles"]["p50"] == pytest.approx(np.median(values))
    assert list(radius["quantiles"]) == ["p01", "p05", "p25", "p50", "p75", "p95", "p99"]
    assert radius["unique"] == len(np.unique(values))
    assert len(radius["histogram"]["edges"]) == 21
    assert sum(radius["histogram"]["counts"]) == 569
    assert profile["per_column"]["target"]["frequencies"] == {"benign": 357, "malignant": 212}


def test_breast_cancer_imbalance_at_a_lower_ratio() -> None:
    profile = prepare("sklearn:breast_cancer", SPEC, imbalance_ratio=1.5).profile
    assert profile["warnings"] == [
        "class imbalance: 'benign' has 1.7x the rows of 'malignant' (357 vs 212); "
        "consider train.class_weight: balanced or train.sampler: balanced"
    ]


def test_digits_profile() -> None:
    profile = prepare("sklearn:digits", SPEC).profile
    assert (profile["rows"], profile["columns"], profile["features"]) == (1797, 2, 1)
    assert profile["task"] == "multiclass"
    assert len(profile["class_balance"]) == 10
    assert sum(profile["class_balance"].values()) == 1797
    image = profile["per_column"]["image"]
    assert image["shape"] == [8, 8]
    assert (image["pixel_min"], image["pixel_max"]) == (0.0, 16.0)
    assert 4.0 < image["pixel_mean"] < 6.0


def test_diabetes_profile_has_no_classes() -> None:
    profile = prepare("sklearn:diabetes", SPEC).profile
    assert profile["task"] == "regression"
    assert "class_balance" not in profile
    assert profile["per_column"]["target"]["min"] == 25.0


def test_imbalance_warning_text() -> None:
    table = pa.table({"x": np.arange(1000.0), "y": ["a"] * 900 + ["b"] * 100})
    assert profile_of(table)["warnings"] == [
        "class imbalance: 'a' has 9.0x the rows of 'b' (900 vs 100); "
        "consider train.class_weight: balanced or train.sampler: balanced"
    ]
    assert profile_of(table, ratio=10.0)["warnings"] == []


def test_constant_and_mostly_missing_columns_warn() -> None:
    n = 10
    table = pa.table(
        {
            "same": ["k"] * n,
            "sparse": [1.0, 2.0, 3.0] + [None] * (n - 3),
            "inf": [float("inf")] + [1.0] * (n - 2) + [2.0],
            "y": [1.5 * i for i in range(n)],
        }
    )
    warnings = profile_of(table)["warnings"]
    assert warnings == [
        "column 'same' is constant (every present value is 'k'); it cannot help a model",
        "column 'sparse' is 70% missing (7 of 10 rows); consider dropping it",
        "column 'inf' has 1 infinite values",
    ]


def test_frequencies_keep_top_50_and_an_other_total() -> None:
    values = [f"v{i:03d}" for i in range(60) for _ in range(60 - i)]
    table = pa.table({"c": values, "y": np.arange(len(values), dtype=float)})
    column = profile_of(table)["per_column"]["c"]
    assert column["unique"] == 60
    freq = column["frequencies"]
    assert len(freq) == 51
    assert list(freq)[:2] == ["v000", "v001"]
    assert freq["v000"] == 60
    assert freq["__other__"] == sum(60 - i for i in range(50, 60))


def test_missing_counts_and_booleans() -> None:
    table = pa.table({"b": [True, None, False, True], "y": [0.5, 1.5, 2.5, 3.5]})
    column = profile_of(table)["per_column"]["b"]
    assert (column["count"], column["missing"], column["missing_share"]) == (3, 1, 0.25)
    assert column["frequencies"] == {"true": 2, "false": 1}


def test_profile_is_strict_json() -> None:
    table = pa.table(
        {
            "x": [float("inf"), float("-inf"), None],
            "t": pa.array([0, 1, 2], pa.timestamp("s")),
            "y": ["a", "b", "a"],
        }
    )
    profile = profile_of(table)
    text = json.dumps(profile, allow_nan=False)
    assert json.loads(text)["per_column"]["t"]["min"] == "1970-01-01T00:00:00"
    assert profile["per_column"]["x"]["mean"] is None


def test_profile_of_100k_rows_by_30_columns_is_fast() -> None:
    rng = np.random.default_rng(1)
    columns = {f"n{i}": rng.normal(size=100_000) for i in range(24)}
    columns |= {f"c{i}": rng.choice(["a", "b", "c", "d"], 100_000) for i in range(5)}
    columns["y"] = rng.choice(["p", "q"], 100_000)
    schema = infer_schema(pa.table(columns), SPEC)
    table = canonicalize(pa.table(columns), schema)
    start = time.perf_counter()
    profile = profile_table(table, schema)
    assert time.perf_counter() - start < 2.0
    assert profile["columns"] == 30 and profile["features"] == 29


def test_a_unique_reference_column_is_called_a_row_key() -> None:
    table = pa.table(
        {
            "ref": [f"INV-{i:04d}" for i in range(600)],
            "amount": np.arange(600.0),
            "y": ["a", "b", "c"] * 200,
        }
    )
    assert profile_of(table)["warnings"] == [
        "column 'ref' holds a different value in each of its 600 rows: it names rows rather "
        "than describing them; set roles: {ref: id}"
    ]
    assert profile_of(table, DatasetSpec(roles={"ref": "id"}))["warnings"] == []


def test_a_categorical_with_few_rows_per_value_warns() -> None:
    table = pa.table({"city": [f"c{i % 400}" for i in range(2000)], "y": ["a", "b"] * 1000})
    assert profile_of(table)["warnings"] == [
        "column 'city' is categorical with 400 distinct values in 2000 rows, too few rows per "
        "value to learn from: if it identifies rows set roles: {city: id}, otherwise group "
        "rare values or set roles: {city: ignore}"
    ]
    # 4 values of 500 rows each, or 60 of 30: nothing to say.
    wide = pa.table({"c": [f"v{i % 60}" for i in range(1800)], "y": ["a", "b"] * 900})
    assert profile_of(wide)["warnings"] == []


@pytest.mark.parametrize("name", ["zip_code", "ZipCode", "postal", "store_id", "countryCode"])
def test_whole_numbers_named_like_a_code_warn(name: str) -> None:
    table = pa.table({name: [2139 + i % 40 for i in range(200)], "y": ["a", "b"] * 100})
    assert profile_of(table)["warnings"] == [
        f"column {name!r} holds whole numbers but its name says it is a code: if they label "
        f"things rather than count them, set types: {{{name}: categorical}}, or roles: "
        f"{{{name}: id}} if it identifies rows"
    ]
    assert profile_of(table, DatasetSpec(types={name: "categorical"}))["warnings"] == []


@pytest.mark.parametrize("name", ["paid", "episode", "valid_count", "decoded"])
def test_ordinary_numbers_do_not_warn(name: str) -> None:
    table = pa.table({name: [i % 40 for i in range(200)], "y": ["a", "b"] * 100})
    assert profile_of(table)["warnings"] == []


def test_dates_that_do_not_say_day_or_month_first_warn() -> None:
    table = pa.table({"when": ["01/02/2024", "03/04/2024"] * 10, "y": ["a", "b"] * 10})
    assert profile_of(table)["warnings"] == [
        "column 'when' looks like dates, but no day is above 12 to tell dd/mm/yyyy from "
        "mm/dd/yyyy, so it stays text: write the dates as yyyy-mm-dd"
    ]


def test_real_data_has_none_of_these_warnings() -> None:
    for name in ("breast_cancer", "wine", "iris", "diabetes"):
        assert prepare(f"sklearn:{name}", SPEC).profile["warnings"] == [], name
