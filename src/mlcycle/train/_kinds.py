"""The model kinds mlcycle ships: ``mlp``, ``cnn``, ``linear`` and ``custom``.

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

__all__ = ["CNN", "MLP", "Custom", "Linear"]


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
}


def _mlp(
    width: int, hidden: tuple[int, ...], dropout: float, n_out: int, activation: str = "relu"
) -> nn.Sequential:
    layers: list[nn.Module] = []
    for size in hidden:
        layers += [nn.Linear(width, size), ACTIVATIONS[activation](), nn.Dropout(dropout)]
        width = size
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class MLP(ModelKind):
    """Fully connected layers of ``hidden`` widths over the features (and flattened pixels)."""

    def build(
        self, spec: ModelSpec, inputs: Preprocess, n_outputs: int, *, root: Path | None = None
    ) -> ModelParts:
        width = inputs.tabular_width + inputs.image_width
        return ModelParts(_mlp(width, spec.hidden, spec.dropout, n_outputs, spec.activation))


class Linear(ModelKind):
    """One linear layer over the features: logistic regression, or linear regression.

    The preprocessing is the MLP's (imputation, standardisation, one-hot or
    embedded categories, scaled pixels); the loss makes it logistic (cross
    entropy) or least squares, and ``train.weight_decay`` is its L2 penalty
    (ridge). ``hidden``, ``dropout`` and ``activation`` are not read.
    """

    def build(
        self, spec: ModelSpec, inputs: Preprocess, n_outputs: int, *, root: Path | None = None
    ) -> ModelParts:
        return ModelParts(nn.Linear(inputs.tabular_width + inputs.image_width, n_outputs))


def _conv_stack(
    shape: tuple[int, int, int], channels: tuple[int, ...], activation: str = "relu"
) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    c, h, w = shape
    for out in channels:
        layers += [nn.Conv2d(c, out, kernel_size=3, padding=1), ACTIVATIONS[activation]()]
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
        conv, image_width = _conv_stack(inputs.image_channels_shape, spec.channels, spec.activation)
        width = inputs.tabular_width + image_width
        body = _mlp(width, spec.hidden[:1], spec.dropout, n_outputs, spec.activation)
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
