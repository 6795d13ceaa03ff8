"""Readers for timm models: ResNet family (incl. ResNet-D average-pool shortcuts), RegNetX, RepVGG."""

from __future__ import annotations

from functools import partial

from timm.models.byobnet import ByobNet, RepVggBlock
from timm.models.regnet import Bottleneck as RegNetBottleneck, RegNet
from timm.models.resnet import ResNet
from torch import nn

from ..blocks import DownsampleType, ResidualBranch
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
    require_inactive,
    require_known_children,
)
from .torchvision import resnet_stage_parts

__all__ = ["regnet_block_branch", "repvgg_block_layers", "timm_head", "timm_maxpool_layers"]


def timm_head(model: nn.Module, path_pool: str = "global_pool", path_fc: str = "fc", prefix: str = ""
              ) -> list[nn.Module]:
    """timm's SelectAdaptivePool2d('avg') + Linear head as plain layers (``prefix``: the head's path)."""
    pool = getattr(model, path_pool)
    pool_type = getattr(pool, "pool_type", None)
    if pool_type != "avg":
        raise UnsupportedModuleError(prefix + path_pool, pool, f"only average pooling is supported, got {pool_type!r}")
    fc = getattr(model, path_fc)
    head: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
    if type(fc) is nn.Linear:
        head.append(fc)
    elif not is_inactive(fc):
        raise UnsupportedModuleError(prefix + path_fc, fc, "only a Linear classifier (or none) is supported")
    return head


def timm_maxpool_layers(module: nn.Module, path: str = "maxpool") -> list[nn.Module]:
    """The stem pool of a timm ResNet: MaxPool2d, none, or a plain conv stretch (``replace_stem_pool``)."""
    if is_inactive(module):
        return []
    if type(module) is nn.MaxPool2d:
        return [module]
    try:
        return plain_layers(module, path)
    except UnsupportedModuleError as error:
        raise UnsupportedModuleError(path, module, f"only MaxPool2d, none or plain convs are supported after the "
                                     f"stem ({error.path} is {error.module_type})") from None


def repvgg_block_layers(block: nn.Module, path: str) -> list[nn.Module]:
    """A timm RepVggBlock (of a working copy) re-parameterised by timm into conv + activation."""
    block.reparameterize()
    require_inactive(block, path, ("attn",))
    act = activation(block.act, f"{path}.act")
    return [block.reparam_conv] + ([] if act is None else [act])


@register_reader(ResNet, "timm ResNet family (BasicBlock / Bottleneck, conv or deep stem, conv or average-pool "
                         "shortcuts)")
def read_timm_resnet(model: ResNet, downsample: DownsampleType, fuse_bn: bool) -> list[Part]:
    stem = named(conv1=model.conv1, bn1=model.bn1, act1=model.act1, maxpool=model.maxpool)
    parts = [plain_part("", stem, lambda: plain_layers(named(conv1=model.conv1, bn1=model.bn1, act1=model.act1), "")
                        + timm_maxpool_layers(model.maxpool))]
    parts += resnet_stage_parts(model, downsample, fuse_bn)
    head = named(global_pool=model.global_pool, fc=model.fc)
    return parts + [plain_part("fc", head, lambda: timm_head(model))]


def regnet_block_branch(block: nn.Module, path: str, input_nonnegative: bool) -> ResidualBranch:
    """A timm RegNet Bottleneck (conv1 1x1, conv2 3x3 grouped, se, conv3 1x1, shortcut ``downsample``,
    ``act3`` after the add) as a :class:`ResidualBranch`. RegNetY's ``se`` is refused by name."""
    require_inactive(block, path, ("se",))
    require_known_children(block, path, {"conv1", "conv2", "se", "conv3", "act3", "downsample", "drop_path"})
    shortcut, window = parse_shortcut(block.downsample, f"{path}.downsample")
    leaves = flatten_leaves(named(conv1=block.conv1, conv2=block.conv2, conv3=block.conv3), path)
    return branch_from_leaves(leaves, shortcut, out_act=activation(block.act3, f"{path}.act3"),
                              input_nonnegative=input_nonnegative, path=path, shortcut_average=window)


def _regnet_plain_block(block: nn.Module, path: str) -> list[nn.Module]:
    """A block built without a shortcut (``downsample=''`` and a shape change): a plain chain."""
    require_inactive(block, path, ("se",))
    return plain_layers(named(conv1=block.conv1, conv2=block.conv2, conv3=block.conv3, act3=block.act3), path)


@register_reader(RegNet, "timm RegNetX (RegNetY's squeeze-excitation and RegNetV's pre-activation are refused)")
def read_timm_regnet(model: RegNet, downsample: DownsampleType, fuse_bn: bool) -> list[Part]:
    parts = [plain_part("stem", model.stem, lambda: plain_layers(model.stem, "stem"))]
    stem_leaves = [m for _, m in flatten_leaves(model.stem, "stem") if not is_inactive(m)]
    nonnegative = bool(stem_leaves) and is_nonnegative_activation(stem_leaves[-1])
    for stage_name in ("s1", "s2", "s3", "s4"):
        for block_name, block in getattr(model, stage_name).named_children():
            path = f"{stage_name}.{block_name}"
            if type(block) is not RegNetBottleneck:
                parts.append(Part(path, block, _refuse(path, block, "only the post-activation RegNet Bottleneck "
                                                       "has an RM form (a pre-activation block adds before its "
                                                       "norm and activation)")))
            elif block.downsample is None:
                parts.append(plain_part(path, block, partial(_regnet_plain_block, block, path)))
            else:
                parts.append(residual_part(path, block, partial(regnet_block_branch, block, path, nonnegative),
                                           downsample, fuse_bn))
            nonnegative = is_nonnegative_activation(getattr(block, "act3", None))
    parts.append(plain_part("final_conv", model.final_conv, lambda: plain_layers(model.final_conv, "final_conv")))
    return parts + [plain_part("head", model.head, lambda: timm_head(model.head, prefix="head."))]


def _refuse(path: str, module: nn.Module, reason: str):
    def build():
        raise UnsupportedModuleError(path, module, reason)

    return build


def _is_repvgg_byobnet(model: nn.Module) -> bool:
    if not isinstance(model, ByobNet):
        return False
    blocks = [model.stem] + [b for stage in model.stages for b in stage]
    return all(isinstance(b, RepVggBlock) for b in blocks)


@register_reader(_is_repvgg_byobnet, "timm RepVGG (ByobNet of RepVggBlocks)")
def read_repvgg_byobnet(model: ByobNet, downsample: DownsampleType, fuse_bn: bool) -> list[Part]:
    parts = [plain_part("stem", model.stem, lambda: repvgg_block_layers(model.stem, "stem"))]
    for stage_index, stage in enumerate(model.stages):
        for block_index, block in enumerate(stage):
            path = f"stages.{stage_index}.{block_index}"
            parts.append(plain_part(path, block, partial(repvgg_block_layers, block, path)))

    def head() -> list[nn.Module]:
        if not is_inactive(model.final_conv):
            raise UnsupportedModuleError("final_conv", model.final_conv, "a final conv is not supported")
        return timm_head(model.head, prefix="head.")

    return parts + [plain_part("head", model.head, head)]
