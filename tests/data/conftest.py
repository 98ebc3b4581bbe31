"""Shared data for the tests of mlcycle.data: real bundled sets, read once."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from mlcycle.data import SklearnSource


@pytest.fixture(scope="session")
def cancer_table() -> pa.Table:
    """scikit-learn's breast cancer set as read by its source (569 rows)."""
    return SklearnSource("breast_cancer").read()


@pytest.fixture(scope="session")
def cancer_frame(cancer_table: pa.Table) -> pd.DataFrame:
    """The same rows as a pandas DataFrame, for writing CSV and Parquet files."""
    frame: pd.DataFrame = cancer_table.to_pandas()
    return frame
