"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package, read offline.

70,000 grey 28x28 images of clothes in ten classes (60,000 from the original
training file, then 10,000 from the test file). The package installs the
original IDX files under ``/usr/share/datasets/fashion-mnist``; nothing is
downloaded. ``fashion-mnist:N`` keeps the first N images, for quick runs.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mlcycle.data._base import DataSource
from mlcycle.errors import DataError

__all__ = ["FASHION_MNIST_CLASSES", "FashionMnistSource"]

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_FILES = (
    ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
)


def _read_idx(path: Path, magic: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    with gzip.open(path, "rb") as handle:
        header = handle.read(8)
        found, count = struct.unpack(">II", header)
        if found != magic:
            raise DataError(
                f"{path}: not an IDX file of this kind (magic {found}, expected {magic})"
            )
        dims = struct.unpack(">II", handle.read(8)) if magic == 2051 else ()
        data = np.frombuffer(handle.read(), dtype=np.uint8)
    expected = count * int(np.prod(dims)) if dims else count
    if data.size != expected:
        raise DataError(f"{path}: truncated: {data.size} bytes of data, expected {expected}")
    return data.reshape((count, *dims))


class FashionMnistSource(DataSource):
    """Fashion-MNIST images (``image``, 28x28) and their class names (``target``).

    Args:
        limit: keep only the first ``limit`` images (``None``: all 70,000).
        folder: where the IDX files are (default: Debian's location).
    """

    def __init__(self, limit: int | None = None, folder: Path = DEFAULT_DIR) -> None:
        if limit is not None and limit < 1:
            raise DataError(f"data source 'fashion-mnist:{limit}': expected a positive row count")
        self.limit = limit
        self.folder = folder

    @classmethod
    def from_uri(
        cls, rest: str, *, base_dir: Path | None = None, given: str = ""
    ) -> FashionMnistSource:
        if rest and not rest.isdigit():
            raise DataError(
                f"data source {given!r}: expected fashion-mnist: or fashion-mnist:N (rows)"
            )
        return cls(int(rest) if rest else None)

    @property
    def default_name(self) -> str:
        return "fashion_mnist"

    def describe(self) -> str:
        return "fashion-mnist:" + (str(self.limit) if self.limit else "")

    @property
    def hints(self) -> dict[str, Any]:
        return {"target": "target", "types": {"image": "image"}, "image_shape": [28, 28]}

    def read(self) -> pa.Table:
        images, labels = [], []
        for image_file, label_file in _FILES:
            if not (self.folder / image_file).exists():
                raise DataError(
                    f"data source 'fashion-mnist': {self.folder / image_file} is missing; "
                    "install Debian's package: apt-get install dataset-fashion-mnist"
                )
            images.append(_read_idx(self.folder / image_file, 2051))
            labels.append(_read_idx(self.folder / label_file, 2049))
        pixels = np.concatenate(images)[: self.limit]
        target = np.concatenate(labels)[: self.limit]
        flat = pa.array(pixels.reshape(len(pixels), -1).astype(np.float32).ravel())
        names = np.asarray(FASHION_MNIST_CLASSES)[target]
        return pa.table(
            {
                "image": pa.FixedSizeListArray.from_arrays(flat, 28 * 28),
                "target": pa.array(names.tolist(), type=pa.string()),
            }
        )
