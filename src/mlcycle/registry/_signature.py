"""The signature of a model version: what goes in and what comes out.

``signature.json`` is plain JSON, read by the registry predictor, the server
and the edge bundle's stand-alone ``predict.py`` alike::

    {
      "format": "mlcycle-signature/1",
      "task": "binary" | "multiclass" | "regression",
      "target": "diagnosis",
      "classes": ["benign", "malignant"] | null,
      "inputs": [
        {"name": "age", "kind": "numeric", "dtype": "float32", "shape": [-1],
         "nullable": true, "range": [18.0, 95.0]},
        {"name": "member", "kind": "boolean", "dtype": "float32", "shape": [-1],
         "nullable": true},
        {"name": "city", "kind": "categorical", "dtype": "string", "shape": [-1],
         "categories": ["lyon", "nice", "paris"]},
        {"name": "image", "kind": "image", "dtype": "float32", "shape": [-1, 28, 28],
         "range": [0.0, 255.0]}
      ],
      "outputs": [
        {"name": "probabilities", "dtype": "float32", "shape": [-1, 2]},
        {"name": "label", "dtype": "string", "shape": [-1]}
      ],
      "context": [
        {"name": "race", "role": "sensitive"},
        {"name": "customer_id", "role": "id"}
      ]
    }

``range`` is the training profile's min and max: values outside it are
allowed (the graph takes them) but are extrapolation. Unseen categories are
allowed and map to the "missing or unseen" code.

``context`` lists the dataset's columns with the ``sensitive``, ``id`` and
``timestamp`` roles: never fed to the model, but taken beside its inputs by
every prediction path and written to the prediction log, so that fairness
over time, slices and the loop's datasets have them. (Signatures written
before it had none: only the target rode along.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

__all__ = ["FORMAT", "InputLayout", "make_signature", "true_targets"]

FORMAT = "mlcycle-signature/1"


class InputLayout(Protocol):
    """Which columns a graph takes, in order (training's ``FeatureLayout`` is one)."""

    @property
    def numeric(self) -> Sequence[str]: ...  # numeric and boolean columns

    @property
    def booleans(self) -> Sequence[str]: ...

    @property
    def categorical(self) -> Sequence[str]: ...

    @property
    def vocabularies(self) -> Mapping[str, Sequence[str]]: ...

    @property
    def image(self) -> str | None: ...

    @property
    def image_shape(self) -> Sequence[int] | None: ...


def make_signature(
    layout: InputLayout,
    *,
    task: str,
    target: str | None,
    classes: list[str] | None,
    profile: dict[str, Any],
    context: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The signature of a model trained with ``layout`` on data with ``profile``."""
    columns = profile.get("per_column", {})
    inputs: list[dict[str, Any]] = []
    for name in layout.numeric:
        stats = columns.get(name, {})
        kind = "boolean" if name in layout.booleans else "numeric"
        entry: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "dtype": "float32",
            "shape": [-1],
            "nullable": True,
        }
        if kind == "numeric" and stats.get("min") is not None:
            entry["range"] = [float(stats["min"]), float(stats["max"])]
        inputs.append(entry)
    for name in layout.categorical:
        inputs.append(
            {
                "name": name,
                "kind": "categorical",
                "dtype": "string",
                "shape": [-1],
                "nullable": True,
                "categories": list(layout.vocabularies[name]),
            }
        )
    if layout.image is not None:
        assert layout.image_shape is not None
        stats = columns.get(layout.image, {})
        image: dict[str, Any] = {
            "name": layout.image,
            "kind": "image",
            "dtype": "float32",
            "shape": [-1, *layout.image_shape],
            "nullable": False,
        }
        if stats.get("pixel_min") is not None:
            image["range"] = [float(stats["pixel_min"]), float(stats["pixel_max"])]
        inputs.append(image)
    if task == "regression":
        outputs = [{"name": "value", "dtype": "float32", "shape": [-1]}]
    else:
        outputs = [
            {"name": "probabilities", "dtype": "float32", "shape": [-1, len(classes or [])]},
            {"name": "label", "dtype": "string", "shape": [-1]},
        ]
    return {
        "format": FORMAT,
        "task": task,
        "target": target,
        "classes": list(classes) if classes is not None else None,
        "inputs": inputs,
        "outputs": outputs,
        "context": list(context or []),
    }


def true_targets(table: pa.Table, signature: Mapping[str, Any]) -> np.ndarray[Any, Any]:
    """The target column of ``table`` as the model answers it: class indices in the
    signature's class order (classification) or float64 values (regression)."""
    import numpy as np

    column = table.column(signature["target"])
    if signature["task"] == "regression":
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    index = {str(c): i for i, c in enumerate(signature.get("classes") or [])}
    return np.array([index[str(v)] for v in column.to_pylist()], dtype=np.int64)
