"""The ResNet baseline of Figure 6: network slimming under the residual constraint, by Torch-Pruning.

The rule is the one RMNet's pruning applies (:func:`.slimming.bn_keep_masks`): a channel goes when
its BN scale is below the threshold. Torch-Pruning's dependency graph couples every channel tied
together by a residual addition, so a residual-stream channel goes only if *every* BN of its coupled
group is below the threshold (the group's max |scale|). That constraint is what RM removes
(:mod:`.slimming`). Neither method is fine-tuned after pruning.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..measure import count_params


def prune_resnet_baseline(model: nn.Module, threshold: float, input_size: tuple[int, int, int]
                          ) -> tuple[nn.Module, dict[str, float]]:
    """A physically pruned copy of ``model``: in every coupled channel group, the channels whose
    largest |BN scale| across the group is below ``threshold`` (at least one channel per group stays)."""
    try:
        import torch_pruning as tp  # an optional dependency, needed by this baseline only
    except ImportError as error:
        raise ImportError("the ResNet pruning baseline needs torch-pruning: pip install torch-pruning") from error
    pruned = copy.deepcopy(model).eval()
    classifier = [m for m in pruned.modules() if isinstance(m, nn.Linear)]
    example = torch.zeros(1, *input_size, dtype=next(pruned.parameters()).dtype)
    graph = tp.DependencyGraph().build_dependency(pruned, example_inputs=example)
    importance = tp.importance.BNScaleImportance(group_reduction="max", normalizer=None)
    removed = 0
    for group in list(graph.get_all_groups(ignored_layers=classifier)):
        scores = importance(group)
        if scores is None:  # a group without BatchNorm: slimming has no scale to judge it by
            continue
        below = scores < threshold
        if bool(below.all()):  # a layer cannot lose every channel: keep the group's strongest
            below[scores.argmax()] = False
        drop = torch.nonzero(below).flatten().tolist()
        if not drop:
            continue
        root = group[0].dep.target.module
        graph.get_pruning_group(root, group[0].dep.handler, drop).prune()
        removed += len(drop)
    return pruned, {"threshold": threshold, "removed_channels": removed, "params_original": count_params(model),
                    "params_pruned": count_params(pruned)}
