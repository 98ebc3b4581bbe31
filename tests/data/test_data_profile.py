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
