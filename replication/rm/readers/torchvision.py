"""Readers for torchvision models: ResNet / ResNeXt / Wide ResNet, RegNetX, MobileNetV2, VGG."""

from __future__ import annotations

from functools import partial

from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual, MobileNetV2
from torchvision.models.regnet import RegNet, ResBottleneckBlock
from torchvision.models.resnet import ResNet
from torchvision.models.vgg import VGG

from ..blocks import DownsampleType, ResidualBranch, reserve_and_merge
from ..errors import UnsupportedModuleError
from ..registry import Part, plain_part, register_reader, residual_part
from .common import (
    activation,
    branch_from_leaves,
    flatten_leaves,
    is_inactive,
    is_nonnegative_activation,
    named,
    parse_shortcut,
    plain_layers,
    resnet_block_branch,
    shortcut_free_block_layers,
)

__all__ = ["inverted_residual_layers", "maxpool_layers", "regnet_block_branch", "resnet_stage_parts"]


def maxpool_layers(module: nn.Module, path: str) -> list[nn.Module]:
    if is_inactive(module):
        return []
    if type(module) is nn.MaxPool2d:
        return [module]
    raise UnsupportedModuleError(path, module, "only MaxPool2d (or none) is supported after the stem")


def resnet_stage_parts(model: nn.Module, downsample: DownsampleType, fuse_bn: bool) -> list[Part]:
    """layer1..layer4 of a torchvision or timm ResNet: RM on each block (shortcut-free blocks as they are)."""
    parts: list[Part] = []
    nonnegative = True  # the stem ends with a ReLU (and a max pool)
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        for index, block in enumerate(getattr(model, stage)):
            path = f"{stage}.{index}"
            if not getattr(block, "has_shortcut", True):
                parts.append(plain_part(path, block, partial(shortcut_free_block_layers, block, path)))
            else:
                parts.append(residual_part(path, block, partial(resnet_block_branch, block, path, nonnegative),
                                           downsample, fuse_bn))
            last = "act3" if hasattr(block, "conv3") else "act2"
            nonnegative = is_nonnegative_activation(getattr(block, "relu", None) or getattr(block, last, None))
    return parts


@register_reader(ResNet, "torchvision ResNet / ResNeXt / Wide ResNet")
def read_torchvision_resnet(model: ResNet, downsample: DownsampleType, fuse_bn: bool) -> list[Part]:
    stem = named(conv1=model.conv1, bn1=model.bn1, relu=model.relu, maxpool=model.maxpool)
    parts = [plain_part("", stem, lambda: plain_layers(named(conv1=model.conv1, bn1=model.bn1, relu=model.relu), "")
                        + maxpool_layers(model.maxpool, "maxpool"))]
    parts += resnet_stage_parts(model, downsample, fuse_bn)
    head = named(avgpool=model.avgpool, fc=model.fc)
    return parts + [plain_part("fc", head, lambda: [nn.AdaptiveAvgPool2d(1), nn.Flatten(1), model.fc])]


def inverted_residual_layers(block: nn.Module, path: str, downsample: DownsampleType, fuse_bn: bool
                             ) -> list[nn.Module]:
    """A torchvision InvertedResidual: RM where it has a residual, plain layers otherwise.

    Its input is the previous block's linear projection, so it can be negative: reserved channels
    pass the ReLU6 unchanged through a :class:`ChannelwiseClamp`.
    """
    if not block.use_res_connect:
        return plain_layers(block.conv, f"{path}.conv")
    return reserve_and_merge(_inverted_residual_branch(block, path), downsample, fuse_bn=fuse_bn)


def _inverted_residual_branch(block: nn.Module, path: str) -> ResidualBranch:
    leaves = flatten_leaves(block.conv, f"{path}.conv")
    return branch_from_leaves(leaves, None, out_act=None, input_nonnegative=False, path=path)


def _inverted_residual_plain(block: nn.Module, path: str) -> list[nn.Module]:
    return plain_layers(block.conv, f"{path}.conv")


@register_reader(MobileNetV2, "torchvision MobileNetV2 (-> RMNetV1 -> MobileNetV1)")
def read_torchvision_mobilenet_v2(model: MobileNetV2, downsample: DownsampleType, fuse_bn: bool) -> list[Part]:
    parts: list[Part] = []
    for index, module in enumerate(model.features):
        path = f"features.{index}"
        if isinstance(module, InvertedResidual) and module.use_res_connect:
            parts.append(residual_part(path, module, partial(_inverted_residual_branch, module, path),
                                       downsample, fuse_bn))
        elif isinstance(module, InvertedResidual):
            parts.append(plain_part(path, module, partial(_inverted_residual_plain, module, path)))
        else:
            parts.append(plain_part(path, module, partial(plain_layers, module, path)))
    return parts + [plain_part("classifier", model.classifier, lambda: [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
                               + plain_layers(model.classifier, "classifier"))]


def regnet_block_branch(block: nn.Module, path: str, input_nonnegative: bool) -> ResidualBranch:
    """A torchvision ResBottleneckBlock (``f`` = a 1x1, b 3x3 grouped, [se], c 1x1; ``proj``; ReLU after
    the add) as a :class:`ResidualBranch`. RegNetY's squeeze-excitation ``f.se`` is refused by name."""
    shortcut, window = parse_shortcut(block.proj, f"{path}.proj")
    leaves = flatten_leaves(block.f, f"{path}.f")
    return branch_from_leaves(leaves, shortcut, out_act=activation(block.activation, f"{path}.activation"),
                              input_nonnegative=input_nonnegative, path=path, shortcut_average=window)


@register_reader(RegNet, "torchvision RegNetX (RegNetY's squeeze-excitation is refused)")
def read_torchvision_regnet(model: RegNet, downsample: DownsampleType, fuse_bn: bool) -> list[Part]:
    parts = [plain_part("stem", model.stem, lambda: plain_layers(model.stem, "stem"))]
    nonnegative = is_nonnegative_activation(flatten_leaves(model.stem, "stem")[-1][1])
    for stage_name, stage in model.trunk_output.named_children():
        for block_name, block in stage.named_children():
            path = f"trunk_output.{stage_name}.{block_name}"
            if not isinstance(block, ResBottleneckBlock):
                raise UnsupportedModuleError(path, block, "only ResBottleneckBlock stages are supported")
            parts.append(residual_part(path, block, partial(regnet_block_branch, block, path, nonnegative),
                                       downsample, fuse_bn))
            nonnegative = is_nonnegative_activation(block.activation)
    head = named(avgpool=model.avgpool, fc=model.fc)
    return parts + [plain_part("fc", head, lambda: plain_layers(named(avgpool=model.avgpool), "") + [nn.Flatten(1)]
                               + plain_layers(named(fc=model.fc), ""))]


@register_reader(VGG, "torchvision VGG (already plain: BN folded only)")
def read_torchvision_vgg(model: VGG, downsample: DownsampleType, fuse_bn: bool) -> list[Part]:
    return [plain_part("features", model.features, lambda: plain_layers(model.features, "features")),
            plain_part("classifier", named(avgpool=model.avgpool, classifier=model.classifier),
                       lambda: [model.avgpool, nn.Flatten(1)] + plain_layers(model.classifier, "classifier"))]
