"""Parameter and multiply-accumulate counts with torch.utils.flop_counter.

The paper's "FLOPs" are multiply-accumulates (MACs): one MAC = 2 FLOPs in torch's counter, which counts
convolutions and matrix products only (no bias adds, activations or pooling).
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    """All parameters, trainable or not (a deploy model has requires_grad off)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: tuple[int, ...] = (3, 224, 224)) -> int:
    """MACs of one forward pass for a batch of one input of shape ``input_size`` (C, H, W)."""
    reference = next(iter(model.parameters()), None)
    dtype = reference.dtype if reference is not None else torch.float32
    device = reference.device if reference is not None else torch.device("cpu")
    x = torch.zeros(1, *input_size, dtype=dtype, device=device)
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def layer_summary(model: nn.Module) -> dict[str, int]:
    """How many leaf modules of each type the model has, e.g. {'Conv2d': 17, 'ReLU': 17, ...}."""
    leaves = [m for m in model.modules() if not list(m.children())]
    return dict(Counter(type(m).__name__ for m in leaves))
