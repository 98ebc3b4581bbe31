"""Fashion-MNIST from Debian's dataset-fashion-mnist package (installed by .ci/run)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from mlcycle.data import FASHION_MNIST_CLASSES, FashionMnistSource, prepare, resolve_source
from mlcycle.data._fashion import DEFAULT_DIR
from mlcycle.errors import DataError
from mlcycle.spec import DatasetSpec


def test_a_subset_is_a_ten_class_image_dataset() -> None:
    data = prepare("fashion-mnist:3000", DatasetSpec())
    assert data.name == "fashion_mnist" and data.source == "fashion-mnist:3000"
    assert data.table.num_rows == 3000
    assert data.schema.task == "multiclass"
    assert set(data.schema.classes or ()) == set(FASHION_MNIST_CLASSES)
    assert data.schema.column("image").shape == (28, 28)
    image = data.profile["per_column"]["image"]
    assert (image["pixel_min"], image["pixel_max"]) == (0.0, 255.0)


@pytest.mark.slow
def test_all_seventy_thousand_images_are_read() -> None:
    table = FashionMnistSource().read()
    assert table.num_rows == 70_000
    counts = np.unique(np.asarray(table.column("target").to_pylist()), return_counts=True)[1]
    assert counts.tolist() == [7000] * 10


def test_bad_fashion_sources_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="expected fashion-mnist: or fashion-mnist:N"):
        resolve_source("fashion-mnist:lots")
    with pytest.raises(DataError, match="is missing; install Debian's package"):
        FashionMnistSource(folder=tmp_path).read()
    for name in DEFAULT_DIR.iterdir():
        shutil.copy(name, tmp_path / name.name)
    broken = tmp_path / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(DEFAULT_DIR / broken.name) as src:
        data = src.read()
    with gzip.open(broken, "wb") as out:
        out.write(data[:-100])
    with pytest.raises(DataError, match="truncated"):
        FashionMnistSource(folder=tmp_path).read()
