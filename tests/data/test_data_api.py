"""The public surface of mlcycle.data, and its docstring examples."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import mlcycle.data


def test_exported_names_are_pinned() -> None:
    assert sorted(mlcycle.data.__all__) == sorted(
        [
            "DataSource",
            "CsvSource",
            "ParquetSource",
            "FrameSource",
            "SklearnSource",
            "resolve_source",
            "Schema",
            "ColumnSchema",
            "infer_schema",
            "canonicalize",
            "fingerprint",
            "profile_table",
            "make_split",
            "prepare",
            "PreparedData",
            "SKLEARN_DATASETS",
            "FashionMnistSource",
            "FASHION_MNIST_CLASSES",
            "MODEL_OUTPUTS",
        ]
    )
    for name in mlcycle.data.__all__:
        assert hasattr(mlcycle.data, name), name


MODULES = ["mlcycle.data"] + [
    f"mlcycle.data.{m.name}" for m in pkgutil.iter_modules(mlcycle.data.__path__)
]


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
