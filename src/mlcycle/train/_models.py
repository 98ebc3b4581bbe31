"""The model zoo: preprocessing inside the network, then an MLP, a CNN or the user's module.

Every model is an :class:`MlcycleNet`: ``forward(numeric, categorical, image)``
takes raw feature columns (NaN for missing numbers, vocabulary codes for
categories, raw pixels) and returns logits for classification or the
standardised value for regression. Imputation, standardisation and the
categorical encoding are buffers fitted on the training split, so they travel
with the weights.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlcycle.plugins import MODEL_KINDS
from mlcycle.spec import ModelSpec
from mlcycle.train._features import FeatureLayout

__all__ = ["MlcycleNet", "Preprocess", "build_model", "init_weights"]


class Preprocess(nn.Module):
    """Impute and standardise numbers, encode categories, scale pixels."""

    num_mean: Tensor
    num_std: Tensor
    pixel_mean: Tensor
    pixel_std: Tensor

    def __init__(self, layout: FeatureLayout, categorical: str, embedding_dim: int | None) -> None:
        super().__init__()
        self.layout = layout
        self.register_buffer("num_mean", torch.tensor(layout.numeric_mean, dtype=torch.float32))
        self.register_buffer("num_std", torch.tensor(layout.numeric_std, dtype=torch.float32))
        self.register_buffer("pixel_mean", torch.tensor(layout.pixel_mean, dtype=torch.float32))
        self.register_buffer("pixel_std", torch.tensor(layout.pixel_std, dtype=torch.float32))
        self.cardinalities = layout.cardinalities
        self.onehot = categorical == "onehot"
        self.embeddings = nn.ModuleList()
        if not self.onehot:
            for card in self.cardinalities:
                dim = embedding_dim or min(16, max(2, round(1.6 * card**0.56)))
                self.embeddings.append(nn.Embedding(card, dim))
        width = len(layout.numeric)
        width += sum(self.cardinalities) if self.onehot else sum(self._embedding_dims())
        self.tabular_width = width
        self.image_channels_shape: tuple[int, int, int] | None = None
        if layout.image_shape is not None:
            shape = layout.image_shape
            if len(shape) == 2:
                self.image_channels_shape = (1, shape[0], shape[1])
            elif len(shape) == 3:
                self.image_channels_shape = (shape[0], shape[1], shape[2])
        self.image_width = math.prod(layout.image_shape) if layout.image_shape else 0

    def _embedding_dims(self) -> list[int]:
        return [e.embedding_dim for e in self.embeddings if isinstance(e, nn.Embedding)]

    def tabular(self, numeric: Tensor | None, categorical: Tensor | None, n: int) -> Tensor:
        parts: list[Tensor] = []
        if numeric is not None:
            filled = torch.where(torch.isnan(numeric), self.num_mean, numeric)
            parts.append((filled - self.num_mean) / self.num_std)
        if categorical is not None:
            for j, card in enumerate(self.cardinalities):
                codes = categorical[:, j].clamp(0, card - 1)
                if self.onehot:
                    parts.append(F.one_hot(codes, card).to(torch.float32))
                else:
                    parts.append(self.embeddings[j](codes))
        if not parts:
            return torch.zeros((n, 0), device=self.num_mean.device)
        return torch.cat(parts, dim=1)

    def image(self, image: Tensor) -> Tensor:
        assert self.image_channels_shape is not None
        scaled = (image - self.pixel_mean) / self.pixel_std
        return scaled.reshape((image.shape[0], *self.image_channels_shape))


def _batch_size(*tensors: Tensor | None) -> int:
    for t in tensors:
        if t is not None:
            return int(t.shape[0])
    raise ValueError("no inputs")


class MlcycleNet(nn.Module):
    """Preprocessing + a body; the common face of every model mlcycle trains.

    Attributes:
        task: ``binary``, ``multiclass`` or ``regression``.
        n_outputs: logits (or values) per row.
    """

    target_mean: Tensor
    target_std: Tensor

    def __init__(
        self,
        preprocess: Preprocess,
        task: str,
        n_outputs: int,
        *,
        body: nn.Module,
        conv: nn.Module | None = None,
        target_mean: float = 0.0,
        target_std: float = 1.0,
    ) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.task = task
        self.n_outputs = n_outputs
        self.conv = conv
        self.body = body
        self.register_buffer("target_mean", torch.tensor(target_mean, dtype=torch.float32))
        self.register_buffer("target_std", torch.tensor(target_std, dtype=torch.float32))

    def forward(
        self,
        numeric: Tensor | None = None,
        categorical: Tensor | None = None,
        image: Tensor | None = None,
    ) -> Tensor:
        n = _batch_size(numeric, categorical, image)
        x = self.preprocess.tabular(numeric, categorical, n)
        if image is not None:
            pixels = self.preprocess.image(image)
            seen = self.conv(pixels).flatten(1) if self.conv is not None else pixels.flatten(1)
            x = torch.cat([seen, x], dim=1)
        return self.body(x)  # type: ignore[no-any-return]

    def outputs(self, raw: Tensor) -> Tensor:
        """Class probabilities, or the value in the target's units."""
        if self.task == "regression":
            return raw.squeeze(-1) * self.target_std + self.target_mean
        if self.n_outputs == 1:  # binary trained with BCE: one logit for classes[1]
            p = torch.sigmoid(raw.squeeze(-1))
            return torch.stack([1 - p, p], dim=1)
        return torch.softmax(raw, dim=1)


def init_weights(model: nn.Module, scheme: str, std: float = 0.02) -> None:
    """Initialise Linear and Conv weights (biases to zero); ``default`` keeps PyTorch's."""
    if scheme == "default":
        return
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            if scheme == "xavier":
                nn.init.xavier_uniform_(module.weight)
            elif scheme == "kaiming":
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            elif scheme == "normal":
                nn.init.normal_(module.weight, 0.0, std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def build_model(
    spec: ModelSpec,
    layout: FeatureLayout,
    task: str,
    n_outputs: int,
    *,
    target_mean: float = 0.0,
    target_std: float = 1.0,
    root: Path | None = None,
) -> MlcycleNet:
    """Build (and initialise, from the current torch seed) the network the spec asks for.

    The preprocessing is mlcycle's; the body is the model kind's
    (``spec.kind``, looked up in :data:`mlcycle.plugins.MODEL_KINDS`), ending
    in ``n_outputs`` values (:func:`~mlcycle.train._loop.head_width`).
    ``root`` (the project folder) is where a ``custom`` factory's module is
    looked for before the import path.

    Raises:
        SpecError: an unknown kind, ``cnn`` without an image column, or a broken
            custom factory.
    """
    preprocess = Preprocess(layout, spec.categorical, spec.embedding_dim)
    parts = MODEL_KINDS.get(spec.kind)().build(spec, preprocess, n_outputs, root=root)
    model = MlcycleNet(
        preprocess,
        task,
        n_outputs,
        body=parts.body,
        conv=parts.image,
        target_mean=target_mean,
        target_std=target_std,
    )
    init_weights(model, spec.init, spec.init_std)
    return model


def model_config(
    spec: ModelSpec, layout: FeatureLayout, task: str, n_outputs: int
) -> dict[str, Any]:
    """What :func:`build_model` needs to rebuild the module, as JSON."""
    return {
        "model": spec.model_dump(mode="json"),
        "layout": layout.to_dict(),
        "task": task,
        "n_outputs": n_outputs,
    }


def network_from_files(
    model_json: bytes, weights: bytes, *, root: Path | None = None
) -> tuple[MlcycleNet, FeatureLayout, dict[str, Any]]:
    """A trained network rebuilt from its ``model.json`` and ``weights.safetensors``, in eval mode.

    The one way a run's or a registered version's PyTorch module comes back
    (evaluation, distillation's teacher, the audits). Returns the network, its
    feature layout and the JSON config (``task``, ``classes``, ``model``...).
    """
    import json

    from safetensors.torch import load as load_tensors

    config = json.loads(model_json)
    layout = FeatureLayout.from_dict(config["layout"])
    net = build_model(
        ModelSpec.model_validate(config["model"]),
        layout,
        config["task"],
        int(config["n_outputs"]),
        root=root,
    )
    net.load_state_dict(load_tensors(weights))
    return net.eval(), layout, config
