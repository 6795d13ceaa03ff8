"""Parameter and multiply-accumulate counts with torch.utils.flop_counter.

The paper's "FLOPs" are multiply-accumulates (MACs): one MAC = 2 FLOPs in torch's counter, which counts
convolutions and matrix products only (no bias adds, activations or pooling).
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
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


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor any op returns (bytes)."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                self.largest = max(self.largest, value.numel() * value.element_size())
        return out


def largest_activation_bytes(model: nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype) -> int | None:
    """Bytes of the largest tensor one forward pass of ``model`` on a batch of ``input_shape`` (N, C, H, W)
    creates, found on the meta device: no memory is allocated and nothing is computed, so an absurd size
    can be refused before it is run. None when the model cannot run on the meta device."""
    meta = {name: torch.empty_like(value, device="meta")
            for name, value in [*model.named_parameters(), *model.named_buffers()]}
    x = torch.empty(input_shape, dtype=dtype, device="meta")
    tracker = _LargestTensor()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), tracker:
            torch.func.functional_call(model, meta, (x,))
    except Exception:  # noqa: BLE001  (a model with data-dependent steps: no estimate)
        return None
    finally:
        model.train(was_training)
    return max(tracker.largest, x.numel() * x.element_size())
