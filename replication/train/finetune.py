"""Fine-tuning after conversion (paper Appendix A.3, Figure 9).

- ``mode="bn"``: the plain network keeps BatchNorm. Channels added by RM get BNs whose running
  statistics are measured on training data and whose weight and bias follow Eq. 2 (w = sqrt(var + eps),
  b = mean), so the network still equals the original exactly when fine-tuning starts.
- ``mode="fused"``: BN folded into the convs first (the deploy form), then fine-tuned.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import torch
from torch import nn

from .. import rm

FINETUNE_MODES = ("bn", "fused")


def reserved_batchnorms(model: nn.Module) -> list[rm.ReservedBatchNorm2d]:
    """BNs of a ``rm.convert(..., fuse_bn=False)`` network that hold identity (reserved) channels."""
    return [m for m in model.modules() if isinstance(m, rm.ReservedBatchNorm2d)]


@torch.no_grad()
def calibrate_reserved_batchnorms_(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """Measure mean / variance of every reserved channel's input over ``batches``, and set those BN
    channels by Eq. 2 so they stay the identity with realistic running statistics. In place."""
    targets = reserved_batchnorms(model)
    sums: dict[int, list[torch.Tensor]] = {}

    def hook(module, inputs):
        start, stop = module.rm_reserved
        x = inputs[0][:, start:stop].double()
        count = x.numel() // x.shape[1]
        totals = sums.setdefault(id(module), [torch.zeros(stop - start, dtype=torch.float64, device=x.device),
                                              torch.zeros(stop - start, dtype=torch.float64, device=x.device), 0])
        totals[0] += x.sum(dim=(0, 2, 3))
        totals[1] += (x * x).sum(dim=(0, 2, 3))
        totals[2] += count

    handles = [bn.register_forward_pre_hook(hook) for bn in targets]
    was_training = model.training
    model.eval()
    try:
        for images in batches:
            model(images)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    for bn in targets:
        if id(bn) not in sums:
            continue
        total, squares, count = sums[id(bn)]
        mean = total / count
        var = (squares / count - mean * mean).clamp_min(0)
        start, stop = bn.rm_reserved
        # Converted BNs keep running statistics (rm refuses a BN without them).
        running_mean, running_var = cast(torch.Tensor, bn.running_mean), cast(torch.Tensor, bn.running_var)
        running_mean[start:stop] = mean.to(running_mean.dtype)
        running_var[start:stop] = var.to(running_var.dtype)
        bn.weight[start:stop] = torch.sqrt(running_var[start:stop] + bn.eps)
        bn.bias[start:stop] = running_mean[start:stop]
    return model


def prepare_for_finetuning(model: nn.Module, mode: str = "bn", calibration: Iterable[torch.Tensor] | None = None,
                           downsample: rm.DownsampleType = "dirac") -> nn.Sequential:
    """The converted network, trainable (requires_grad on), ready for :func:`replication.train.train`."""
    if mode not in FINETUNE_MODES:
        raise ValueError(f"fine-tuning mode must be one of {FINETUNE_MODES}, got {mode!r}")
    plain = rm.convert(model, downsample, fuse_bn=(mode == "fused"))
    if mode == "bn" and calibration is not None:
        calibrate_reserved_batchnorms_(plain, calibration)
    for param in plain.parameters():
        param.requires_grad_(True)
    return plain
