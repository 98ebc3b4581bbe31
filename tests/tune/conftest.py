from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Trials train in this process on one PyTorch thread.

    The models are tiny: on a machine shared with other work, a second thread
    only spins against the first (a study of iris MLPs runs 2-3x slower).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
