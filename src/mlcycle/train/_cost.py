"""What a trained model costs: FLOPs per predicted row, the process's peak memory."""

from __future__ import annotations

import resource

import torch
from torch.utils.flop_counter import FlopCounterMode

from mlcycle.train._loop import TrainData
from mlcycle.train._models import MlcycleNet

__all__ = ["flops_per_sample", "peak_memory_mb"]


def flops_per_sample(model: MlcycleNet, data: TrainData) -> int:
    sample = {}
    for name in ("numeric", "categorical", "image"):
        value = getattr(data.val_x, name)
        if value is not None:
            sample[name] = torch.from_numpy(value[:1])
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.cpu()(**sample)
    model.to(device)
    return int(counter.get_total_flops())


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
