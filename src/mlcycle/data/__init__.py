"""Data: read a source, decide what it means, and make a dataset version of it.

Everything here is a pure function of data: no store, no files written. The
store calls :func:`prepare` and records what it returns::

    source ─► read ─► infer_schema ─► canonicalize ─► fingerprint
                                                   ├─► profile_table
                                                   └─► make_split

Example:
    >>> from mlcycle.data import prepare
    >>> from mlcycle.spec import DatasetSpec
    >>> data = prepare("sklearn:breast_cancer", DatasetSpec())
    >>> data.profile["class_balance"]
    {'benign': 357, 'malignant': 212}
"""

from __future__ import annotations

from mlcycle.data._base import DataSource
from mlcycle.data._canonical import canonicalize, fingerprint
from mlcycle.data._fashion import FASHION_MNIST_CLASSES, FashionMnistSource
from mlcycle.data._names import MODEL_OUTPUTS
from mlcycle.data._prepare import PreparedData, prepare
from mlcycle.data._profile import profile_table
from mlcycle.data._schema import ColumnSchema, Schema, infer_schema
from mlcycle.data._sources import (
    SKLEARN_DATASETS,
    CsvSource,
    FrameSource,
    ParquetSource,
    SklearnSource,
    resolve_source,
)
from mlcycle.data._split import make_split

__all__ = [
    "FASHION_MNIST_CLASSES",
    "MODEL_OUTPUTS",
    "SKLEARN_DATASETS",
    "ColumnSchema",
    "CsvSource",
    "DataSource",
    "FashionMnistSource",
    "FrameSource",
    "ParquetSource",
    "PreparedData",
    "Schema",
    "SklearnSource",
    "canonicalize",
    "fingerprint",
    "infer_schema",
    "make_split",
    "prepare",
    "profile_table",
    "resolve_source",
]
