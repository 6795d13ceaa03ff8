"""The ResNet baseline of Figure 6: network slimming under the residual constraint, by Torch-Pruning.

Torch-Pruning's dependency graph couples every channel tied together by a residual addition, so a
residual-stream channel goes only if the whole coupled group is unimportant. That constraint is what
RM removes (:mod:`.slimming`).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..measure import count_params


def prune_resnet_baseline(model: nn.Module, threshold: float, input_size: tuple[int, int, int]
                          ) -> tuple[nn.Module, dict[str, float]]:
    """A physically pruned copy of ``model``: as many channels as have |BN scale| < ``threshold``,
    chosen globally by BN-scale importance within Torch-Pruning's coupled groups."""
    try:
        import torch_pruning as tp
    except ImportError as error:
        raise ImportError("the ResNet pruning baseline needs torch-pruning: pip install torch-pruning") from error
    pruned = copy.deepcopy(model).eval()
    scales = torch.cat([m.weight.detach().abs().flatten() for m in pruned.modules()
                        if isinstance(m, nn.modules.batchnorm._BatchNorm)])
    ratio = float((scales < threshold).float().mean())
    classifier = [m for m in pruned.modules() if isinstance(m, nn.Linear)]
    example = torch.zeros(1, *input_size, dtype=next(pruned.parameters()).dtype)
    pruner = tp.pruner.BNScalePruner(pruned, example, importance=tp.importance.BNScaleImportance(),
                                     global_pruning=True, pruning_ratio=min(ratio, 0.99), ignored_layers=classifier)
    if ratio > 0:
        pruner.step()
    return pruned, {"threshold": threshold, "target_ratio": ratio, "params_original": count_params(model),
                    "params_pruned": count_params(pruned)}
