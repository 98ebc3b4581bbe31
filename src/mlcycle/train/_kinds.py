"""The model kinds mlcycle ships: ``mlp``, ``cnn`` and ``custom``.

Each is a :class:`~mlcycle.train._base.ModelKind` registered by name in
:data:`mlcycle.plugins.MODEL_KINDS`; :func:`~mlcycle.train.build_model` puts
the parts a kind builds between mlcycle's preprocessing and the head.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from torch import nn

from mlcycle.errors import SpecError
from mlcycle.spec import ModelSpec
from mlcycle.train._base import ModelKind, ModelParts
from mlcycle.train._models import Preprocess

__all__ = ["CNN", "MLP", "Custom"]


def _mlp(width: int, hidden: tuple[int, ...], dropout: float, n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
        width = size
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class MLP(ModelKind):
    """Fully connected layers of ``hidden`` widths over the features (and flattened pixels)."""

    def build(
        self, spec: ModelSpec, inputs: Preprocess, n_outputs: int, *, root: Path | None = None
    ) -> ModelParts:
        width = inputs.tabular_width + inputs.image_width
        return ModelParts(_mlp(width, spec.hidden, spec.dropout, n_outputs))


def _conv_stack(
    shape: tuple[int, int, int], channels: tuple[int, ...]
) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    c, h, w = shape
    for out in channels:
        layers += [nn.Conv2d(c, out, kernel_size=3, padding=1), nn.ReLU()]
        if min(h, w) >= 4:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        c = out
    return nn.Sequential(*layers), c * h * w


class CNN(ModelKind):
    """3x3 convolutions of ``channels`` over the image, then one hidden layer with the tabular features."""

    def build(
        self, spec: ModelSpec, inputs: Preprocess, n_outputs: int, *, root: Path | None = None
    ) -> ModelParts:
        if inputs.image_channels_shape is None:
            raise SpecError(
                "train.model.kind: 'cnn' needs an image column; this dataset has none (use mlp)"
            )
        conv, image_width = _conv_stack(inputs.image_channels_shape, spec.channels)
        width = inputs.tabular_width + image_width
        body = _mlp(width, spec.hidden[:1], spec.dropout, n_outputs)
        return ModelParts(nn.Sequential(nn.Dropout(spec.dropout), *body), image=conv)


@contextmanager
def _importable_from(folder: Path | None) -> Iterator[None]:
    """``folder`` first on the import path while a factory is imported and called.

    A factory in the project folder is found as ``PYTHONPATH=.`` would find it,
    whatever the working directory, and the path is as it was afterwards.
    """
    entry = str(folder) if folder is not None else None
    if entry is None or entry in sys.path:
        yield
        return
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        sys.path.remove(entry)


class Custom(ModelKind):
    """The module ``factory(in_features=, n_outputs=, image_shape=, **options)`` returns."""

    def build(
        self, spec: ModelSpec, inputs: Preprocess, n_outputs: int, *, root: Path | None = None
    ) -> ModelParts:
        assert spec.factory is not None
        module_name, _, attr = spec.factory.partition(":")
        with _importable_from(root):
            try:
                factory = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError) as exc:
                where = f" (looked in {root} too)" if root is not None else ""
                raise SpecError(
                    f"train.model.factory: {spec.factory!r} cannot be imported{where}: {exc}"
                ) from None
            module = factory(
                in_features=inputs.tabular_width + inputs.image_width,
                n_outputs=n_outputs,
                image_shape=inputs.layout.image_shape,
                **spec.options,
            )
        if not isinstance(module, nn.Module):
            raise SpecError(
                f"train.model.factory: {spec.factory!r} returned {type(module).__name__}, "
                "expected a torch.nn.Module"
            )
        return ModelParts(module)
