"""Network slimming (Liu et al., 2017) through RM, as paper section 3.4 describes it.

1. Train a ResNet with an L1 penalty on BN scale factors (``TrainConfig.sparsity``), with an extra BN on
   every identity shortcut (:func:`add_shortcut_batchnorms_`) so the channels RM reserves get a scale
   factor too.
2. Mask: channels whose BN scale is below a threshold get scale and shift 0 (:func:`apply_masks_`); the
   masked network is the reference the pruned one must equal.
3. Convert the masked network with RM and remove every channel of the plain network that is exactly
   zero or that the next layer ignores (:func:`prune_plain`). Without residual additions, any channel
   can go: the pruned plain network equals the masked network up to rounding.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from .. import rm
from ..measure import count_params
from ..rm.activations import ChannelwiseClamp

_CHANNELWISE_ZERO_PRESERVING = (nn.ReLU, nn.ReLU6, nn.PReLU, ChannelwiseClamp, nn.MaxPool2d, nn.Identity)


def add_shortcut_batchnorms_(model: nn.Module) -> nn.Module:
    """Give every identity shortcut of a ResNet a BatchNorm, in place (before sparsity training).

    Works on torchvision and timm BasicBlock / Bottleneck, whose forward applies ``downsample`` when set.
    """
    for module in model.modules():
        if hasattr(module, "downsample") and module.downsample is None and hasattr(module, "conv2"):
            channels = (module.conv3 if hasattr(module, "conv3") else module.conv2).out_channels
            reference = module.conv1.weight
            module.downsample = nn.Sequential(nn.BatchNorm2d(channels, device=reference.device, dtype=reference.dtype))
    return model


def bn_keep_masks(model: nn.Module, threshold: float) -> dict[str, torch.Tensor]:
    """For every BatchNorm: True where |scale| >= ``threshold`` (the channel is kept)."""
    return {name: module.weight.detach().abs() >= threshold for name, module in model.named_modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.weight is not None}


@torch.no_grad()
def apply_masks_(model: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    """Set scale and shift of masked channels to 0, in place: those channels output exactly zero."""
    modules = dict(model.named_modules())
    for name, keep in masks.items():
        bn = modules[name]
        bn.weight.mul_(keep)
        bn.bias.mul_(keep)
    return model


def _consumer(layers: list[nn.Module], start: int) -> int | None:
    """Index of the layer that reads layer ``start``'s channels, past channel-wise zero-preserving ones."""
    for index in range(start + 1, len(layers)):
        layer = layers[index]
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            return index
        if not isinstance(layer, (*_CHANNELWISE_ZERO_PRESERVING, nn.AdaptiveAvgPool2d, nn.Flatten)):
            return None
    return None


def _keep_channels(conv: nn.Conv2d, consumer: nn.Conv2d | nn.Linear) -> torch.Tensor:
    """Channels of ``conv`` that are not exactly zero and that ``consumer`` reads."""
    zero_out = (conv.weight.flatten(1) == 0).all(dim=1)
    if conv.bias is not None:
        zero_out &= conv.bias == 0
    ignored = (consumer.weight.transpose(0, 1).flatten(1) == 0).all(dim=1)
    return ~(zero_out | ignored)


def _slice_conv(conv: nn.Conv2d, out_keep: torch.Tensor | None, in_keep: torch.Tensor | None) -> nn.Conv2d:
    weight, bias = conv.weight.detach(), None if conv.bias is None else conv.bias.detach()
    if out_keep is not None:
        weight, bias = weight[out_keep], None if bias is None else bias[out_keep]
    if in_keep is not None:
        weight = weight[:, in_keep]
    return rm.primitives.new_conv(weight.clone(), None if bias is None else bias.clone(), conv, groups=1)


def _slice_activation(layer: nn.Module, keep: torch.Tensor) -> nn.Module:
    if isinstance(layer, nn.PReLU) and layer.num_parameters > 1:
        pruned = nn.PReLU(int(keep.sum()), dtype=layer.weight.dtype, device=layer.weight.device)
        pruned.weight.data.copy_(layer.weight.detach()[keep])
        return pruned
    if isinstance(layer, ChannelwiseClamp):
        return ChannelwiseClamp(layer.lower.flatten()[keep], layer.upper.flatten()[keep])
    return layer


def prune_plain(plain: nn.Sequential) -> nn.Sequential:
    """Remove dead channels from a converted plain network; the output is unchanged.

    A conv's output channel goes when its weights and bias are exactly zero (so it outputs zero through
    ReLU / PReLU / clamp / max-pool) or when the next conv or linear layer reads it with zero weights.
    Channels feeding grouped convs are kept (their groups would change).
    """
    layers = [copy.deepcopy(layer) for layer in plain]
    for index, layer in enumerate(layers):
        if not isinstance(layer, nn.Conv2d) or layer.groups != 1:
            continue
        target = _consumer(layers, index)
        if target is None:
            continue
        consumer = cast("nn.Conv2d | nn.Linear", layers[target])  # _consumer stops only at these
        if isinstance(consumer, nn.Conv2d) and consumer.groups != 1:
            continue
        keep = _keep_channels(layer, consumer)
        if bool(keep.all()):
            continue
        if not bool(keep.any()):  # a layer cannot lose every channel: keep one (it outputs exact zeros)
            keep[0] = True
        layers[index] = _slice_conv(layer, keep, None)
        for between in range(index + 1, target):
            layers[between] = _slice_activation(layers[between], keep)
        if isinstance(consumer, nn.Conv2d):
            layers[target] = _slice_conv(consumer, None, keep)
        else:
            linear = nn.Linear(int(keep.sum()), consumer.out_features, bias=consumer.bias is not None,
                               dtype=consumer.weight.dtype, device=consumer.weight.device)
            with torch.no_grad():
                linear.weight.copy_(consumer.weight[:, keep])
                if consumer.bias is not None:
                    linear.bias.copy_(consumer.bias)
            layers[target] = linear
    return nn.Sequential(*layers).eval()


@dataclass
class PruneReport:
    threshold: float
    params_original: int        # the trained residual model
    params_plain: int           # after RM, before pruning
    params_pruned: int          # after RM and pruning
    masked_channels: int
    total_channels: int

    @property
    def pruned_ratio(self) -> float:
        """Share of the original model's parameters removed (Figure 6's 'pruned params ratio')."""
        return 1.0 - self.params_pruned / self.params_original


def slim_and_prune(model: nn.Module, threshold: float) -> tuple[nn.Module, nn.Sequential, PruneReport]:
    """Masked copy of ``model`` and its pruned plain network (RM + :func:`prune_plain`), with counts."""
    masked = copy.deepcopy(model).eval()
    masks = bn_keep_masks(masked, threshold)
    apply_masks_(masked, masks)
    plain = rm.convert(masked)
    pruned = prune_plain(plain)
    report = PruneReport(threshold=threshold, params_original=count_params(model), params_plain=count_params(plain),
                         params_pruned=count_params(pruned),
                         masked_channels=int(sum((~m).sum() for m in masks.values())),
                         total_channels=int(sum(m.numel() for m in masks.values())))
    return masked, pruned, report
