"""Readers for timm models: ResNet family (incl. ResNet-D average-pool shortcuts), RegNetX, RepVGG, the
EfficientNet class's ReLU / ReLU6 models without squeeze-excitation, and ``features_only`` wrappers."""

from __future__ import annotations

from functools import partial

from timm.layers import BatchNormAct2d
from timm.models._features import FeatureListNet
from timm.models.byobnet import ByobNet, RepVggBlock
from timm.models.efficientnet import EfficientNet, EfficientNetFeatures
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
    resnet_block_branch,
    shortcut_free_block_layers,
)
from .torchvision import resnet_stage_parts

__all__ = ["efficientnet_block_part", "regnet_block_branch", "repvgg_block_layers", "timm_head", "timm_maxpool_layers"]


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


# timm's EfficientNet class (MobileNetV2, EfficientNet-Lite, MnasNet, SPNASNet, FBNet-C, MobileNetV1 ...):
# inverted-residual, depthwise-separable and edge-residual blocks. A block with a skip is a residual
# branch whose input is the previous block's linear projection (it can be negative), as in
# torchvision's MobileNetV2; squeeze-excitation, anti-aliasing, space-to-depth and activations other
# than ReLU / ReLU6 are refused by name.

_EFFICIENTNET_CHAINS = {  # block class name -> its layers in forward order (attribute names)
    "InvertedResidual": ("conv_pw", "bn1", "conv_dw", "bn2", "conv_pwl", "bn3"),
    "DepthwiseSeparableConv": ("conv_dw", "bn1", "conv_pw", "bn2"),
    "EdgeResidual": ("conv_exp", "bn1", "conv_pwl", "bn2"),
    "ConvBnAct": ("conv", "bn1"),
}


def _efficientnet_chain(block: nn.Module, path: str) -> nn.Sequential:
    names = _EFFICIENTNET_CHAINS[type(block).__name__]
    require_inactive(block, path, ("se", "aa", "conv_s2d", "bn_s2d"))
    require_known_children(block, path, set(names) | {"se", "aa", "drop_path", "conv_s2d", "bn_s2d"})
    return named(**{name: getattr(block, name) for name in names})


def _is_efficientnet_block(module: nn.Module) -> bool:
    # exact classes only: CondConvResidual subclasses InvertedResidual with per-sample kernels
    kind = type(module)
    return kind.__module__ == "timm.models._efficientnet_blocks" and kind.__name__ in _EFFICIENTNET_CHAINS


def efficientnet_block_part(block: nn.Module, path: str, downsample: DownsampleType, fuse_bn: bool) -> Part:
    """One block of a timm EfficientNet-class model as a :class:`Part` (RM where it has a skip)."""
    if not _is_efficientnet_block(block):
        return Part(path, block, _refuse(path, block, "this EfficientNet-class block has no RM reader (exact RM "
                                         "forms exist for InvertedResidual, DepthwiseSeparableConv, EdgeResidual "
                                         "and ConvBnAct with ReLU / ReLU6 and no squeeze-excitation)"))
    if not getattr(block, "has_skip", False):
        return plain_part(path, block, lambda: plain_layers(_efficientnet_chain(block, path), path))

    def branch() -> ResidualBranch:
        leaves = flatten_leaves(_efficientnet_chain(block, path), path)
        return branch_from_leaves(leaves, None, out_act=None, input_nonnegative=False, path=path)

    return residual_part(path, block, branch, downsample, fuse_bn)


def _efficientnet_block_parts(blocks: nn.Module, downsample: DownsampleType, fuse_bn: bool) -> list[Part]:
    return [efficientnet_block_part(block, f"blocks.{s}.{b}", downsample, fuse_bn)
            for s, stage in enumerate(blocks.children()) for b, block in enumerate(stage.children())]


def _efficientnet_stem(model: nn.Module) -> Part:
    stem = named(conv_stem=model.conv_stem, bn1=model.bn1)
    return plain_part("", stem, lambda: plain_layers(stem, ""))


@register_reader(EfficientNet, "timm EfficientNet class with ReLU / ReLU6 and no squeeze-excitation (MobileNetV2, "
                               "EfficientNet-Lite, MnasNet, SPNASNet, FBNet-C, MobileNetV1)")
def read_timm_efficientnet(model: EfficientNet, downsample: DownsampleType, fuse_bn: bool) -> list[Part]:
    parts = [_efficientnet_stem(model)] + _efficientnet_block_parts(model.blocks, downsample, fuse_bn)
    head = named(conv_head=model.conv_head, bn2=model.bn2)
    parts.append(plain_part("conv_head", head, lambda: plain_layers(head, "")))
    classifier = named(global_pool=model.global_pool, classifier=model.classifier)
    return parts + [plain_part("classifier", classifier,
                               lambda: timm_head(model, path_pool="global_pool", path_fc="classifier"))]


@register_reader(EfficientNetFeatures, "timm EfficientNet class with features_only=True")
def read_timm_efficientnet_features(model: EfficientNetFeatures, downsample: DownsampleType, fuse_bn: bool
                                    ) -> list[Part]:
    if model.feature_hooks is not None:
        return [Part("", model, _refuse("", model, "features taken by hooks inside a block "
                                        "(feature_location='expansion') have no plain form"))]
    taps = set(model._stage_out_idx)
    parts = [_efficientnet_stem(model)]
    parts[0].tap = 0 in taps
    for s, stage in enumerate(model.blocks.children()):
        stage_parts = [efficientnet_block_part(block, f"blocks.{s}.{b}", downsample, fuse_bn)
                       for b, block in enumerate(stage.children())]
        if s + 1 > max(taps):
            break  # nothing after the last tap is returned
        if stage_parts:
            stage_parts[-1].tap = s + 1 in taps
        parts += stage_parts
    return parts


# timm's features_only wrapper of the other families (FeatureListNet): the model's top-level modules in
# order (stem layers, stages), the outputs of some of them returned as a list.

def _feature_item_parts(module: nn.Module, path: str, downsample: DownsampleType, fuse_bn: bool,
                        nonnegative: bool) -> tuple[list[Part], bool]:
    """Parts of one module of a FeatureListNet, and whether its output is known to be >= 0."""
    from timm.models.resnet import BasicBlock, Bottleneck

    if isinstance(module, (BasicBlock, Bottleneck)):
        if not getattr(module, "has_shortcut", True):
            part = plain_part(path, module, partial(shortcut_free_block_layers, module, path))
        else:
            part = residual_part(path, module, partial(resnet_block_branch, module, path, nonnegative),
                                 downsample, fuse_bn)
        last = "act3" if hasattr(module, "conv3") else "act2"
        return [part], is_nonnegative_activation(getattr(module, last, None))
    if _is_efficientnet_block(module):
        return [efficientnet_block_part(module, path, downsample, fuse_bn)], False
    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
        parts: list[Part] = []
        for name, child in module.named_children():
            child_parts, nonnegative = _feature_item_parts(child, f"{path}.{name}", downsample, fuse_bn, nonnegative)
            parts += child_parts
        return parts, nonnegative
    if is_inactive(module):
        return [], nonnegative
    if type(module) in (nn.Conv2d, nn.BatchNorm2d, nn.Linear) or isinstance(module, BatchNormAct2d):
        return [plain_part(path, module, partial(plain_layers, module, path))], False
    if type(module) is nn.MaxPool2d:
        return [plain_part(path, module, lambda: [module])], nonnegative
    if is_nonnegative_activation(module):
        return [plain_part(path, module, partial(plain_layers, module, path))], True
    return [Part(path, module, _refuse(path, module, "no RM reader for this module inside a features_only model "
                                       "(timm ResNet and EfficientNet-class blocks are read)"))], False


@register_reader(lambda model: type(model) is FeatureListNet,
                 "timm features_only models (FeatureListNet) of the timm ResNet family")
def read_timm_feature_list(model: FeatureListNet, downsample: DownsampleType, fuse_bn: bool) -> list[Part]:
    if getattr(model, "concat", False):
        return [Part("", model, _refuse("", model, "feature_concat=True has no plain form"))]
    returned = list(model.return_layers)
    parts: list[Part] = []
    nonnegative = False  # the network input
    for name, module in model.items():
        item_parts, nonnegative = _feature_item_parts(module, name, downsample, fuse_bn, nonnegative)
        if name in model.return_layers:
            if not item_parts:
                return [Part(name, module, _refuse(name, module, "a tapped module that computes nothing "
                                                   "(an identity) has no place in a plain network"))]
            item_parts[-1].tap = True
        parts += item_parts
        if name == returned[-1]:
            break
    return parts
