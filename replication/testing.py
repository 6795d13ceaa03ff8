"""Helpers for checking conversions: models whose BatchNorms are not the identity."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def randomize_batchnorm_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random running statistics and affine parameters, in place.

    Default statistics (mean 0, var 1, weight 1, bias 0) make BN the identity and hide conversion
    bugs. Weights are drawn from [0.5, 1.5] (random sign), biases from N(0, 0.5), means from N(0, 0.5),
    variances from [0.5, 2]: scales stay near one, so deep networks neither vanish nor explode.
    """
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            running_mean, running_var = module.running_mean, module.running_var
            assert running_mean is not None and running_var is not None, "BN without running statistics"

            def draw(fn, n: int = n, like: torch.Tensor = running_mean) -> torch.Tensor:
                return fn(n, generator=generator).to(like)

            sign = torch.where(torch.rand(n, generator=generator) < 0.2, -1.0, 1.0).to(running_mean)
            running_mean.copy_(0.5 * draw(torch.randn))
            running_var.copy_(0.5 + 1.5 * draw(torch.rand))
            if module.affine:
                module.weight.copy_(sign * (0.5 + draw(torch.rand)))
                module.bias.copy_(0.5 * draw(torch.randn))
    return model
