"""A user's own model, loaded by ``train.model.factory: tests.train.custom_models:tiny``."""

from __future__ import annotations

from torch import nn


def tiny(in_features: int, n_outputs: int, image_shape: object = None, width: int = 8) -> nn.Module:
    return nn.Sequential(nn.Linear(in_features, width), nn.Tanh(), nn.Linear(width, n_outputs))


def not_a_module(in_features: int, n_outputs: int, image_shape: object = None) -> object:
    return "nope"
