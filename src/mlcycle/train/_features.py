"""From a dataset version's columns to the arrays a model takes.

The encoding is fitted on the training rows only: vocabularies of categorical
columns, means and standard deviations of numeric ones, the pixel scale of an
image column. What is fitted becomes part of the model (see ``_models.py``),
so the exported graph later takes raw columns and serving cannot skew from
training. Outside the model only two things happen, both lossless: strings
become vocabulary codes (0 = missing or unseen) and columns are stacked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlcycle.data import Schema
from mlcycle.errors import DataError

__all__ = ["Encoded", "FeatureLayout", "encode", "encode_target", "fit_layout"]

FloatArray = np.ndarray[Any, np.dtype[np.float32]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class FeatureLayout:
    """Which columns feed the model, in which order, and what was fitted on them.

    Attributes:
        numeric: numeric and boolean columns (booleans as 0/1), in order.
        categorical: categorical columns, in order.
        vocabularies: the training categories of each categorical column; code
            ``i + 1`` is ``vocabularies[col][i]``, code 0 is missing or unseen.
        image: the image column, if any, and its shape.
        numeric_mean, numeric_std: training statistics (missing values ignored).
        pixel_mean, pixel_std: training statistics of the image column.
    """

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    vocabularies: dict[str, tuple[str, ...]]
    image: str | None
    image_shape: tuple[int, ...] | None
    numeric_mean: tuple[float, ...]
    numeric_std: tuple[float, ...]
    pixel_mean: float = 0.0
    pixel_std: float = 1.0
    booleans: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "vocabularies": {k: list(v) for k, v in self.vocabularies.items()},
            "image": self.image,
            "image_shape": list(self.image_shape) if self.image_shape else None,
            "numeric_mean": list(self.numeric_mean),
            "numeric_std": list(self.numeric_std),
            "pixel_mean": self.pixel_mean,
            "pixel_std": self.pixel_std,
            "booleans": list(self.booleans),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureLayout:
        return cls(
            numeric=tuple(data["numeric"]),
            categorical=tuple(data["categorical"]),
            vocabularies={k: tuple(v) for k, v in data["vocabularies"].items()},
            image=data["image"],
            image_shape=tuple(data["image_shape"]) if data["image_shape"] else None,
            numeric_mean=tuple(data["numeric_mean"]),
            numeric_std=tuple(data["numeric_std"]),
            pixel_mean=float(data["pixel_mean"]),
            pixel_std=float(data["pixel_std"]),
            booleans=tuple(data.get("booleans", ())),
        )

    @property
    def cardinalities(self) -> tuple[int, ...]:
        """Codes per categorical column, the 'missing or unseen' code included."""
        return tuple(len(self.vocabularies[c]) + 1 for c in self.categorical)


@dataclass(frozen=True)
class Encoded:
    """The model inputs of some rows; absent groups are ``None``."""

    numeric: FloatArray | None
    categorical: IntArray | None
    image: FloatArray | None

    def __len__(self) -> int:
        for part in (self.numeric, self.categorical, self.image):
            if part is not None:
                return int(part.shape[0])
        return 0


def _numeric_matrix(table: pa.Table, columns: tuple[str, ...]) -> FloatArray:
    out = np.empty((table.num_rows, len(columns)), dtype=np.float32)
    for j, name in enumerate(columns):
        col = table.column(name)
        col = pc.cast(col, pa.float64()) if not pa.types.is_floating(col.type) else col
        out[:, j] = col.to_numpy(zero_copy_only=False)  # nulls become NaN
    return out


def _image_array(table: pa.Table, name: str, shape: tuple[int, ...]) -> FloatArray:
    col = table.column(name).combine_chunks()
    if col.null_count:
        raise DataError(f"image column {name!r} is missing in {col.null_count} rows")
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32)  # a writable copy
    return np.asarray(flat.reshape((table.num_rows, *shape)), dtype=np.float32)


def fit_layout(schema: Schema, train: pa.Table) -> FeatureLayout:
    """Fit the encoding on the training rows.

    Raises:
        DataError: the dataset has no feature columns, or more than one image column.
    """
    numeric: list[str] = []
    booleans: list[str] = []
    categorical: list[str] = []
    images: list[str] = []
    for name in schema.features:
        column = schema.column(name)
        if column.type == "numeric":
            numeric.append(name)
        elif column.type == "boolean":
            numeric.append(name)
            booleans.append(name)
        elif column.type == "categorical":
            categorical.append(name)
        elif column.type == "image":
            images.append(name)
    if not (numeric or categorical or images):
        raise DataError("the dataset has no feature columns to train on")
    if len(images) > 1:
        raise DataError(f"{len(images)} image columns {images}: expected at most one")

    matrix = _numeric_matrix(train, tuple(numeric))
    with np.errstate(all="ignore"):
        mean = np.nan_to_num(np.nanmean(matrix, axis=0)) if numeric else np.zeros(0)
        std = np.nan_to_num(np.nanstd(matrix, axis=0)) if numeric else np.zeros(0)
    std = np.where(std > 1e-12, std, 1.0)
    vocabularies = {}
    for name in categorical:
        values = pc.drop_null(pc.unique(train.column(name).cast(pa.string())))
        vocabularies[name] = tuple(sorted(values.to_pylist()))
    image = images[0] if images else None
    shape = schema.column(image).shape if image else None
    pixel_mean, pixel_std = 0.0, 1.0
    if image:
        assert shape is not None
        pixels = _image_array(train, image, shape)
        pixel_mean, pixel_std = float(pixels.mean()), float(pixels.std()) or 1.0
    return FeatureLayout(
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        vocabularies=vocabularies,
        image=image,
        image_shape=tuple(shape) if shape else None,
        numeric_mean=tuple(float(v) for v in mean),
        numeric_std=tuple(float(v) for v in std),
        pixel_mean=pixel_mean,
        pixel_std=pixel_std,
        booleans=tuple(booleans),
    )


def encode(table: pa.Table, layout: FeatureLayout) -> Encoded:
    """The model inputs of ``table``'s rows (raw values: the model scales them)."""
    numeric = _numeric_matrix(table, layout.numeric) if layout.numeric else None
    categorical = None
    if layout.categorical:
        categorical = np.zeros((table.num_rows, len(layout.categorical)), dtype=np.int64)
        for j, name in enumerate(layout.categorical):
            vocabulary = pa.array(layout.vocabularies[name], type=pa.string())
            index = pc.index_in(table.column(name).cast(pa.string()), value_set=vocabulary)
            categorical[:, j] = pc.fill_null(index, -1).to_numpy(zero_copy_only=False) + 1
    image = None
    if layout.image is not None:
        assert layout.image_shape is not None
        image = _image_array(table, layout.image, layout.image_shape)
    return Encoded(numeric=numeric, categorical=categorical, image=image)


def encode_target(table: pa.Table, schema: Schema) -> np.ndarray[Any, Any]:
    """Class indices (int64) for classification, values (float32) for regression."""
    if schema.target is None:
        raise DataError("the dataset has no target column: set data.datasets.NAME.target")
    column = table.column(schema.target)
    if schema.task == "regression":
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        return np.asarray(values, dtype=np.float32)
    classes = pa.array(schema.classes or (), type=pa.string())
    index = pc.index_in(column.cast(pa.string()), value_set=classes)
    if index.null_count:
        unknown = pc.filter(column, pc.is_null(index))[0].as_py()
        raise DataError(
            f"target {schema.target!r}: value {unknown!r} is not one of the dataset's classes"
        )
    return np.asarray(index.to_numpy(zero_copy_only=False), dtype=np.int64)
