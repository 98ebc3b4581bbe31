"""Adversarial examples under an L-infinity budget: FGSM and PGD on a network's raw inputs.

The attacks move the inputs the network takes (:class:`~mlcycle.train.MlcycleNet`:
raw numbers and raw pixels; the network standardises them itself), so an
attacked row is again a row of raw columns, which the exported graph and the
out-of-distribution detector read as they are.

What one unit of ``eps`` is (:class:`AttackBudget`): for a numeric column its
training standard deviation (the one the network standardises with), for an
image the training pixel range (max - min: ``eps`` 8/255 is the usual budget
of 0..255 images). Attacked pixels are clipped to that range; numbers are
not clipped, so a row may leave the training range (the OOD detector's range
check then sees it). Categorical and boolean inputs are discrete and never
moved.

FGSM (Goodfellow et al. 2015) is one step of ``eps`` along the sign of the
loss gradient; PGD (Madry et al. 2018) takes ``steps`` signed steps from an
optional random start in the ball, each followed by clipping and the
projection back onto the ball, in the order the Adversarial Robustness
Toolbox applies them (its results and these agree; a test checks it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mlcycle.train._features import FeatureLayout
from mlcycle.train._models import MlcycleNet

__all__ = [
    "ATTACKS",
    "AttackBudget",
    "attack_loss",
    "default_step_size",
    "fgsm",
    "perturb",
    "pgd",
    "random_start",
]

ATTACKS = ("fgsm", "pgd")
MOVABLE = ("numeric", "image")  # the inputs an attack moves; categorical codes never move

Loss = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class AttackBudget:
    """One unit of ``eps`` per input, and the box attacked pixels stay in.

    Attributes:
        numeric: raw units of one ``eps`` per numeric column (its training
            standard deviation; 0 for a boolean column, never moved), or None.
        pixel: raw units of one ``eps`` for every pixel (the training pixel range).
        pixel_low, pixel_high: the training pixel range; attacked pixels are clipped to it.
    """

    numeric: Tensor | None
    pixel: float = 0.0
    pixel_low: float = 0.0
    pixel_high: float = 0.0

    @classmethod
    def of(cls, layout: FeatureLayout, pixels: np.ndarray[Any, Any] | None = None) -> AttackBudget:
        """The budget of a network with ``layout``; ``pixels`` are its training images, if any."""
        numeric = None
        if layout.numeric:
            unit = [
                0.0 if name in layout.booleans else std
                for name, std in zip(layout.numeric, layout.numeric_std, strict=True)
            ]
            numeric = torch.tensor(unit, dtype=torch.float32)
        if pixels is None or layout.image is None or not pixels.size:
            return cls(numeric)
        low, high = float(np.nanmin(pixels)), float(np.nanmax(pixels))
        return cls(numeric, high - low, low, high)

    def to(self, device: torch.device) -> AttackBudget:
        """The same budget with its per-column units on ``device``."""
        numeric = None if self.numeric is None else self.numeric.to(device)
        return AttackBudget(numeric, self.pixel, self.pixel_low, self.pixel_high)

    @property
    def movable(self) -> tuple[str, ...]:
        """The inputs an attack can move (none: nothing to attack)."""
        out = ("numeric",) if self.numeric is not None and bool((self.numeric > 0).any()) else ()
        return (*out, "image") if self.pixel > 0 else out

    def radius(self, name: str, eps: float, like: Tensor) -> Tensor:
        """The ball's half-width for input ``name`` at ``eps``, broadcastable to ``like``."""
        if name == "numeric":
            assert self.numeric is not None
            return (eps * self.numeric).to(like.device)
        return torch.tensor(eps * self.pixel, dtype=like.dtype, device=like.device)

    def clip(self, name: str, x: Tensor) -> Tensor:
        if name == "image":
            return x.clamp(self.pixel_low, self.pixel_high)
        return x


def attack_loss(raw: Tensor, y: Tensor) -> Tensor:
    """What an untargeted attack climbs: the cross-entropy of the true class, summed over rows.

    Summed, so that a row's gradient does not depend on the rows beside it;
    one logit (a binary model trained with BCE) is the logit of class 1.
    """
    if raw.shape[-1] == 1:
        return F.binary_cross_entropy_with_logits(raw.squeeze(-1), y.to(raw.dtype), reduction="sum")
    return F.cross_entropy(raw, y, reduction="sum")


def default_step_size(eps: float, steps: int) -> float:
    """PGD's step when none is given: ``2.5 * eps / steps`` (Madry et al.), in units of ``eps``."""
    return 2.5 * eps / steps


def random_start(
    inputs: Mapping[str, Tensor], budget: AttackBudget, eps: float, generator: torch.Generator
) -> dict[str, Tensor]:
    """A uniform draw from the L-infinity ball of radius ``eps`` per movable input.

    Drawn on the CPU from ``generator``, input by input in a fixed order, so
    one seed gives one start whatever the device.
    """
    start = {}
    for name in budget.movable:
        x = inputs[name]
        u = torch.rand(x.shape, generator=generator, dtype=torch.float32).to(x.device)
        start[name] = (2 * u - 1) * budget.radius(name, eps, x)
    return start


def perturb(
    net: MlcycleNet,
    inputs: Mapping[str, Tensor],
    y: Tensor,
    budget: AttackBudget,
    *,
    eps: float,
    steps: int,
    step_size: float,
    start: Mapping[str, Tensor] | None = None,
    loss: Loss = attack_loss,
) -> dict[str, Tensor]:
    """``inputs`` moved ``steps`` signed gradient steps up ``loss``, within ``eps`` of where they were.

    Each step: ``x + step * sign(grad)``, clipped to the pixel range, then
    projected onto the ball around the original inputs. ``start`` (raw units,
    per movable input) is added (and clipped) before the first step. The
    network runs in evaluation mode (no dropout, batch-norm statistics
    frozen) and gets back the mode it had; no parameter gradient is kept.
    """
    names = budget.movable
    origin = {name: inputs[name] for name in names}
    radius = {name: budget.radius(name, eps, origin[name]) for name in names}
    stride = {name: budget.radius(name, step_size, origin[name]) for name in names}
    current = dict(origin)
    if start is not None:
        current = {name: budget.clip(name, origin[name] + start[name]) for name in names}
    was_training = net.training
    net.eval()
    try:
        for _ in range(steps):
            leaves = {name: current[name].detach().requires_grad_(True) for name in names}
            with torch.enable_grad():
                raw = net(**{**inputs, **leaves}).float()
                grads = torch.autograd.grad(loss(raw, y), [leaves[n] for n in names])
            for name, grad in zip(names, grads, strict=True):
                stepped = budget.clip(name, leaves[name].detach() + stride[name] * grad.sign())
                delta = torch.clamp(stepped - origin[name], -radius[name], radius[name])
                current[name] = origin[name] + delta
    finally:
        net.train(was_training)
    return {**inputs, **{name: current[name].detach() for name in names}}


def fgsm(
    net: MlcycleNet,
    inputs: Mapping[str, Tensor],
    y: Tensor,
    budget: AttackBudget,
    *,
    eps: float,
    loss: Loss = attack_loss,
) -> dict[str, Tensor]:
    """The fast gradient sign method: one step of ``eps`` along the sign of the gradient."""
    return perturb(net, inputs, y, budget, eps=eps, steps=1, step_size=eps, loss=loss)


def pgd(
    net: MlcycleNet,
    inputs: Mapping[str, Tensor],
    y: Tensor,
    budget: AttackBudget,
    *,
    eps: float,
    steps: int = 10,
    step_size: float | None = None,
    generator: torch.Generator | None = None,
    loss: Loss = attack_loss,
) -> dict[str, Tensor]:
    """Projected gradient descent, from a random start drawn from ``generator`` (None: no start).

    ``step_size`` (units of ``eps``) defaults to :func:`default_step_size`.

    Example:
        >>> import torch
        >>> from mlcycle.spec import ModelSpec
        >>> from mlcycle.train._models import build_model
        >>> layout = FeatureLayout(("a", "b"), (), {}, None, None, (0.0, 0.0), (1.0, 2.0))
        >>> _ = torch.manual_seed(0)
        >>> net = build_model(ModelSpec(hidden=[4]), layout, "multiclass", 2)
        >>> x = {"numeric": torch.zeros(3, 2)}
        >>> out = pgd(net, x, torch.tensor([0, 1, 0]), AttackBudget.of(layout), eps=0.5,
        ...           generator=torch.Generator().manual_seed(0))
        >>> out["numeric"].abs().amax(dim=0).tolist()  # at most 0.5 std per column
        [0.5, 1.0]
    """
    step = default_step_size(eps, steps) if step_size is None else step_size
    start = None if generator is None else random_start(inputs, budget, eps, generator)
    return perturb(
        net, inputs, y, budget, eps=eps, steps=steps, step_size=step, start=start, loss=loss
    )
