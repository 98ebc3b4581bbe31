"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint holds what it takes to continue exactly where training stopped:
the weights, the best weights so far (for early stopping), the optimiser's
state, the random-number generators, the schedule and the history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

__all__ = ["Checkpoint", "pack_optimizer", "unpack_optimizer"]


def pack_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors and JSON."""
    tensors: dict[str, torch.Tensor] = {}
    per_param: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        plain: dict[str, Any] = {}
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                plain[name] = value
        per_param[str(index)] = plain
    return tensors, {"param_groups": state["param_groups"], "state": per_param}


def unpack_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`pack_optimizer`."""
    state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in meta["state"].items()}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


@dataclass
class Checkpoint:
    """Training state after a completed epoch."""

    epoch: int
    weights: dict[str, torch.Tensor]
    best_weights: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: dict[str, torch.Tensor]
    state: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> tuple[bytes, bytes]:
        """(safetensors bytes, JSON bytes)."""
        optim_tensors, optim_meta = pack_optimizer(self.optimizer)
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.weights.items()}
        tensors |= {
            f"best.{k}": v.detach().cpu().contiguous() for k, v in self.best_weights.items()
        }
        tensors |= {f"optim.{k}": v for k, v in optim_tensors.items()}
        tensors |= {f"rng.{k}": v.cpu().contiguous() for k, v in self.rng.items()}
        meta = {"epoch": self.epoch, "optimizer": optim_meta, "state": self.state}
        return save_tensors(tensors), json.dumps(meta).encode()

    @classmethod
    def from_bytes(cls, tensor_bytes: bytes, json_bytes: bytes) -> Checkpoint:
        tensors = load_tensors(tensor_bytes)
        meta = json.loads(json_bytes)
        groups: dict[str, dict[str, torch.Tensor]] = {
            "model": {},
            "best": {},
            "optim": {},
            "rng": {},
        }
        for key, value in tensors.items():
            prefix, name = key.split(".", 1)
            groups[prefix][name] = value
        return cls(
            epoch=int(meta["epoch"]),
            weights=groups["model"],
            best_weights=groups["best"],
            optimizer=unpack_optimizer(groups["optim"], meta["optimizer"]),
            rng=groups["rng"],
            state=meta["state"],
        )
