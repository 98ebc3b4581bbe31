"""Integrated Gradients on a version's PyTorch graph, per raw input column.

A version's network (:class:`~mlcycle.train.MlcycleNet`) takes raw columns:
numbers, vocabulary codes of categories, pixels. Codes have no gradient, so
the attribution is taken one step inside the network, where every input is
continuous: the numbers (standardised by the network itself), each category
as the vector the network sees (its one-hot row or its embedding), the
pixels. The path from the baseline to the row runs through that space; the
attributions of a category's dimensions are summed back to its column, and
an image's stay per pixel (a heat map) beside their sum.

The path integral is computed with Gauss-Legendre quadrature (Captum's
``method="gausslegendre"``), in float64 so that the completeness error
measures the quadrature, not float32 rounding. The completeness error of a
row is ``sum(attributions) - (f(x) - f(baseline))``; its relative size is
that over ``|f(x) - f(baseline)|``.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlcycle.train import FeatureLayout, MlcycleNet, encode, network_from_files

if TYPE_CHECKING:
    from pathlib import Path

    import pyarrow as pa

__all__ = [
    "IGOutcome",
    "adaptive_integrated_gradients",
    "continuous_inputs",
    "gauss_legendre",
    "integrated_gradients",
    "load_network",
    "mode_codes",
]

# Rows explained in one Captum call: steps x rows forward passes at once.
_CHUNK_EVALUATIONS = 32768


def load_network(files: dict[str, bytes], root: Path | None) -> tuple[MlcycleNet, FeatureLayout]:
    """The version's network, rebuilt from ``model.json`` and its weights, in float64, eval mode."""
    net, layout, _ = network_from_files(
        files["model.json"], files["weights.safetensors"], root=root
    )
    return net.double().eval(), layout


def mode_codes(train: pa.Table, layout: FeatureLayout) -> list[int]:
    """The most frequent training category of each categorical column, as its code."""
    if not layout.categorical:
        return []
    encoded = encode(train, layout).categorical
    assert encoded is not None
    return [
        int(np.bincount(encoded[:, j], minlength=card)[1:].argmax()) + 1
        for j, card in enumerate(layout.cardinalities)
    ]


@functools.lru_cache(maxsize=16)
def gauss_legendre(steps: int) -> tuple[list[float], list[float]]:
    """Weights and nodes of the ``steps``-point Gauss-Legendre rule on [0, 1], as Captum takes them.

    The rule Captum's ``method="gausslegendre"`` uses, computed by SciPy's
    ``roots_legendre`` (fast at any size) instead of ``numpy.polynomial.legendre.leggauss``.
    """
    from scipy.special import roots_legendre

    x, w = roots_legendre(steps)
    return (0.5 * np.asarray(w)).tolist(), (0.5 * (1 + np.asarray(x))).tolist()


class _Continuous(nn.Module):
    """The network from its continuous inputs: (numbers?, one vector per category..., image?)."""

    def __init__(self, net: MlcycleNet, layout: FeatureLayout) -> None:
        super().__init__()
        self.net = net
        self.numeric = bool(layout.numeric)
        self.n_categorical = len(layout.categorical)
        self.image = layout.image is not None

    def forward(self, *inputs: Tensor) -> Tensor:
        pre = self.net.preprocess
        parts: list[Tensor] = []
        i = 0
        if self.numeric:
            parts.append((inputs[0] - pre.num_mean) / pre.num_std)
            i = 1
        parts.extend(inputs[i : i + self.n_categorical])
        i += self.n_categorical
        n = inputs[0].shape[0]
        x = torch.cat(parts, dim=1) if parts else inputs[0].new_zeros((n, 0))
        if self.image:
            pixels = pre.image(inputs[i])
            conv = self.net.conv
            seen = conv(pixels).flatten(1) if conv is not None else pixels.flatten(1)
            x = torch.cat([seen, x], dim=1)
        return self.net.outputs(self.net.body(x))


def continuous_inputs(
    net: MlcycleNet,
    layout: FeatureLayout,
    numeric: np.ndarray[Any, Any] | None,
    codes: np.ndarray[Any, Any] | None,
    image: np.ndarray[Any, Any] | None,
) -> tuple[Tensor, ...]:
    """The inputs :class:`_Continuous` takes, float64; missing numbers imputed as the network does."""
    pre = net.preprocess
    out: list[Tensor] = []
    if layout.numeric:
        assert numeric is not None
        values = torch.as_tensor(np.asarray(numeric, dtype=np.float64))
        out.append(torch.where(torch.isnan(values), pre.num_mean, values))
    if layout.categorical:
        assert codes is not None
        with torch.no_grad():
            for j, card in enumerate(layout.cardinalities):
                column = torch.as_tensor(codes[:, j], dtype=torch.int64).clamp(0, card - 1)
                if pre.onehot:
                    out.append(F.one_hot(column, card).to(torch.float64))
                else:
                    out.append(pre.embeddings[j](column).detach().to(torch.float64))
    if layout.image is not None:
        assert image is not None
        out.append(torch.as_tensor(np.asarray(image, dtype=np.float64)))
    return tuple(out)


@dataclass(frozen=True)
class IGOutcome:
    """Per row: attributions per column (images: their sum), pixel maps, f(x), f(baseline)."""

    columns: dict[str, np.ndarray[Any, Any]]  # column -> (rows,)
    heatmaps: np.ndarray[Any, Any] | None  # (rows, H, W)
    outputs: np.ndarray[Any, Any]
    baseline_outputs: np.ndarray[Any, Any]
    errors: np.ndarray[Any, Any]  # sum(attributions) - (f(x) - f(baseline))
    steps: np.ndarray[Any, Any]  # Gauss-Legendre nodes each row was integrated with

    def converged(self, tolerance: float) -> np.ndarray[Any, Any]:
        """Rows whose relative completeness error is within ``tolerance``.

        A row whose output barely moves from the baseline's has no meaningful
        relative error: an absolute error at float64 noise (1e-9) counts as met.
        """
        change = np.abs(self.outputs - self.baseline_outputs)
        error = np.abs(self.errors)
        return np.asarray((error <= tolerance * change) | (error <= 1e-9))

    def replace(self, rows: np.ndarray[Any, Any], other: IGOutcome) -> IGOutcome:
        """This outcome with ``rows`` (positions) taken from ``other`` (computed for them only)."""

        def merged(
            mine: np.ndarray[Any, Any], theirs: np.ndarray[Any, Any]
        ) -> np.ndarray[Any, Any]:
            out = mine.copy()
            out[rows] = theirs
            return out

        return IGOutcome(
            columns={c: merged(v, other.columns[c]) for c, v in self.columns.items()},
            heatmaps=(
                merged(self.heatmaps, other.heatmaps)
                if self.heatmaps is not None and other.heatmaps is not None
                else None
            ),
            outputs=merged(self.outputs, other.outputs),
            baseline_outputs=merged(self.baseline_outputs, other.baseline_outputs),
            errors=merged(self.errors, other.errors),
            steps=merged(self.steps, other.steps),
        )


def integrated_gradients(
    net: MlcycleNet,
    layout: FeatureLayout,
    inputs: tuple[Tensor, ...],
    baseline: tuple[Tensor, ...],
    targets: list[int] | None,
    steps: int,
) -> IGOutcome:
    """Integrated Gradients of each row of ``inputs`` from the one-row ``baseline``.

    ``targets``: the output (class index) per row for a classifier, None for
    regression. Attributions are of the probability (classifier) or the
    value in the target's units (regression).
    """
    from captum.attr import IntegratedGradients

    model = _Continuous(copy.deepcopy(net), layout).eval()
    ig = IntegratedGradients(model)
    nodes = gauss_legendre(steps)
    n = inputs[0].shape[0]
    chunk = max(1, _CHUNK_EVALUATIONS // steps)
    pieces: list[tuple[Tensor, ...]] = []
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        rows = tuple(t[start:stop] for t in inputs)
        base = tuple(b.expand_as(r).contiguous() for b, r in zip(baseline, rows, strict=True))
        target = None if targets is None else targets[start:stop]
        # Captum's attribute(method="gausslegendre") with these very nodes (its own
        # numpy.leggauss takes seconds from 1024 nodes up: an n x n eigenproblem)
        attributions = ig._attribute(
            rows, base, target=target, n_steps=steps, step_sizes_and_alphas=nodes
        )
        pieces.append(tuple(a.detach() for a in attributions))
    attrs = tuple(torch.cat([p[k] for p in pieces]) for k in range(len(inputs)))
    with torch.no_grad():
        out = model(*inputs)
        base_out = model(*baseline)
    index = torch.arange(n)
    if targets is None:
        f_x, f_b = out.reshape(n), base_out.reshape(1).expand(n)
    else:
        chosen = torch.as_tensor(targets)
        f_x, f_b = out[index, chosen], base_out[0, chosen]
    columns: dict[str, np.ndarray[Any, Any]] = {}
    k = 0
    if layout.numeric:
        for j, name in enumerate(layout.numeric):
            columns[name] = attrs[0][:, j].numpy()
        k = 1
    for name in layout.categorical:
        columns[name] = attrs[k].sum(dim=1).numpy()
        k += 1
    heatmaps = None
    if layout.image is not None:
        pixels = attrs[k]
        if pixels.dim() == 4:  # channels first: one map, summed over channels
            pixels = pixels.sum(dim=1)
        heatmaps = pixels.numpy()
        columns[layout.image] = pixels.reshape(n, -1).sum(dim=1).numpy()
    total = sum(a.reshape(n, -1).sum(dim=1) for a in attrs)
    assert isinstance(total, Tensor)
    return IGOutcome(
        columns=columns,
        heatmaps=heatmaps,
        outputs=f_x.numpy(),
        baseline_outputs=f_b.numpy(),
        errors=(total - (f_x - f_b)).numpy(),
        steps=np.full(n, steps),
    )


def adaptive_integrated_gradients(
    net: MlcycleNet,
    layout: FeatureLayout,
    inputs: tuple[Tensor, ...],
    baseline: tuple[Tensor, ...],
    targets: list[int] | None,
    *,
    start: int,
    limit: int,
    tolerance: float,
) -> IGOutcome:
    """:func:`integrated_gradients` at ``start`` nodes, then doubled for the rows above ``tolerance``.

    A ReLU network's gradient jumps where the path crosses a unit's kink, so
    the quadrature error falls only as 1/steps on some rows (measured: at 256
    nodes most digits rows are near 1e-4, a few near 1e-3); the rows that need
    more nodes get them, up to ``limit``, the others are not recomputed.
    """
    outcome = integrated_gradients(net, layout, inputs, baseline, targets, start)
    steps = start
    pending = np.flatnonzero(~outcome.converged(tolerance))
    while pending.size and steps < limit:
        steps = min(limit, steps * 2)
        again = integrated_gradients(
            net,
            layout,
            tuple(t[torch.as_tensor(pending)] for t in inputs),
            baseline,
            None if targets is None else [targets[i] for i in pending],
            steps,
        )
        outcome = outcome.replace(pending, again)
        pending = np.flatnonzero(~outcome.converged(tolerance))
    return outcome
