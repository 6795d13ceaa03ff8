"""Read supported architectures into plain layer lists, applying RM to every residual block.

Each reader walks one family in forward order and returns layers in the unfused form
(Conv2d, BatchNorm2d, activations, pooling, Linear). :mod:`replication.rm.convert` then fuses them.
Anything the reader does not recognise raises :class:`UnsupportedModuleError` naming its path, so a
conversion is never silently wrong.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .activations import is_supported_activation
from .blocks import DownsampleType, ResidualBranch, reserve_and_merge
from .errors import UnsupportedModuleError
from .primitives import ConvBN

Reader = Callable[[nn.Module, DownsampleType, bool], list[nn.Module]]
_READERS: list[tuple[Callable[[nn.Module], bool], Reader, str]] = []


def register_reader(matches: Callable[[nn.Module], bool], description: str) -> Callable[[Reader], Reader]:
    """Register a reader for models where ``matches(model)`` is true (newest registration wins)."""

    def wrap(reader: Reader) -> Reader:
        _READERS.insert(0, (matches, reader, description))
        return reader

    return wrap


def find_reader(model: nn.Module) -> Reader:
    for matches, reader, _ in _READERS:
        if matches(model):
            return reader
    supported = "; ".join(description for _, _, description in _READERS)
    raise UnsupportedModuleError("", model, f"no RM conversion for this model type. Supported: {supported}")


def _is_inactive(module: Any) -> bool:
    """Modules that are the identity in eval mode (dropout, drop-path, drop-block, nn.Identity)."""
    if module is None or isinstance(module, (nn.Identity, nn.Dropout)):
        return True
    return type(module).__name__ in {"DropPath", "DropBlock2d", "DropBlockFast2d"}


def _require_inactive(block: nn.Module, path: str, names: tuple[str, ...]) -> None:
    for name in names:
        module = getattr(block, name, None)
        if not _is_inactive(module):
            raise UnsupportedModuleError(f"{path}.{name}", module,
                                         "this layer inside a residual block has no RM conversion")


def _require_known_children(block: nn.Module, path: str, known: set[str]) -> None:
    for name, child in block.named_children():
        if name not in known and not _is_inactive(child):
            raise UnsupportedModuleError(f"{path}.{name}", child, "unexpected layer inside a residual block")


def _activation(module: nn.Module | None, path: str) -> nn.Module | None:
    if not is_supported_activation(module):
        raise UnsupportedModuleError(path, module, "unsupported activation (ReLU or ReLU6 expected)")
    return module


def _shortcut(downsample: nn.Module | None, path: str) -> ConvBN | None:
    if downsample is None or isinstance(downsample, nn.Identity):
        return None
    parts = list(downsample.children()) if isinstance(downsample, nn.Sequential) else [downsample]
    if (len(parts) == 2 and isinstance(parts[0], nn.Conv2d) and isinstance(parts[1], nn.BatchNorm2d)):
        return ConvBN(parts[0], parts[1])
    if len(parts) == 1 and isinstance(parts[0], nn.BatchNorm2d):  # BN on an identity shortcut (slimming)
        return ConvBN(identity_conv(parts[0]), parts[0])
    names = ", ".join(type(p).__name__ for p in parts)
    raise UnsupportedModuleError(f"{path}.downsample", downsample,
                                 f"only a conv+BN projection shortcut is supported, found [{names}] "
                                 "(average-pool or anti-aliased downsampling has no exact RM form yet)")


def identity_conv(bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A 1x1 conv that copies its input, so a BN-only shortcut is a conv+BN projection like any other."""
    conv = nn.Conv2d(bn.num_features, bn.num_features, 1, bias=False, dtype=bn.weight.dtype, device=bn.weight.device)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(bn.num_features, dtype=bn.weight.dtype).view_as(conv.weight))
    return conv


def resnet_block_branch(block: nn.Module, path: str) -> ResidualBranch:
    """A torchvision or timm BasicBlock / Bottleneck as a :class:`ResidualBranch` (input is >= 0)."""
    is_bottleneck = hasattr(block, "conv3")
    n = 3 if is_bottleneck else 2
    conv_names = [f"conv{i}" for i in range(1, n + 1)]
    bn_names = [f"bn{i}" for i in range(1, n + 1)]
    if hasattr(block, "relu"):  # torchvision: one ReLU module used after every conv and the addition
        acts = [block.relu] * n
        act_names = {"relu"}
    else:  # timm: act1..actN
        acts = [getattr(block, f"act{i}") for i in range(1, n + 1)]
        act_names = {f"act{i}" for i in range(1, n + 1)}
        _require_inactive(block, path, ("aa", "se"))
    _require_known_children(block, path, set(conv_names) | set(bn_names) | act_names | {"downsample"})
    units = []
    for conv_name, bn_name in zip(conv_names, bn_names):
        conv, bn = getattr(block, conv_name), getattr(block, bn_name)
        if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
            raise UnsupportedModuleError(f"{path}.{conv_name}", conv, "expected Conv2d followed by BatchNorm2d")
        units.append(ConvBN(conv, bn))
    acts = [_activation(a, f"{path}.act") for a in acts]
    return ResidualBranch(units=units, acts=acts[:-1], shortcut=_shortcut(block.downsample, path),
                          out_act=acts[-1], input_nonnegative=True, path=path)


def flatten_leaves(module: nn.Module, path: str) -> list[tuple[str, nn.Module]]:
    """Leaf modules of nested Sequentials in order, with their paths."""
    if isinstance(module, nn.Sequential):
        leaves = []
        for name, child in module.named_children():
            leaves.extend(flatten_leaves(child, f"{path}.{name}" if path else name))
        return leaves
    return [(path, module)]


_PLAIN_TYPES = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.MaxPool2d, nn.AdaptiveAvgPool2d,
                nn.Flatten, nn.Linear)


def plain_layers(module: nn.Module, path: str) -> list[nn.Module]:
    """Layers of a branch-free part of a network (stem, head), checked to be convertible."""
    layers = []
    for leaf_path, leaf in flatten_leaves(module, path):
        if _is_inactive(leaf):
            continue
        if isinstance(leaf, nn.Hardtanh) and not is_supported_activation(leaf):
            raise UnsupportedModuleError(leaf_path, leaf, "unsupported activation")
        if not isinstance(leaf, _PLAIN_TYPES):
            raise UnsupportedModuleError(leaf_path, leaf, "this layer has no plain-network equivalent here")
        layers.append(leaf)
    return layers


def branch_from_leaves(leaves: list[tuple[str, nn.Module]], shortcut: ConvBN | None, *, out_act: nn.Module | None,
                       input_nonnegative: bool, path: str) -> ResidualBranch:
    """Parse ``[conv, BN, act, conv, BN, act, ..., conv, BN]`` into a :class:`ResidualBranch`."""
    units: list[ConvBN] = []
    acts: list[nn.Module | None] = []
    pending_act = False
    for leaf_path, leaf in leaves:
        if _is_inactive(leaf):
            continue
        if isinstance(leaf, nn.Conv2d):
            if units and not pending_act:
                acts.append(None)
            units.append(ConvBN(leaf))
            pending_act = False
        elif isinstance(leaf, nn.BatchNorm2d) and units and units[-1].bn is None and not pending_act:
            units[-1].bn = leaf
        elif is_supported_activation(leaf) and units and not pending_act:
            acts.append(_activation(leaf, leaf_path))
            pending_act = True
        else:
            raise UnsupportedModuleError(leaf_path, leaf, "unexpected layer inside a residual block")
    if pending_act:
        raise UnsupportedModuleError(path, None, "a residual branch must end with a conv(+BN), not an activation")
    return ResidualBranch(units=units, acts=acts, shortcut=shortcut, out_act=out_act,
                          input_nonnegative=input_nonnegative, path=path)


def _named(**modules: nn.Module) -> nn.Sequential:
    """A Sequential over existing modules, so error paths use their attribute names."""
    return nn.Sequential(OrderedDict(modules))


def _is_torchvision_resnet(model: nn.Module) -> bool:
    from torchvision.models.resnet import ResNet

    return isinstance(model, ResNet)


def resnet_stage_layers(model: nn.Module, downsample: DownsampleType, fuse_bn: bool) -> list[nn.Module]:
    """layer1..layer4 of a torchvision or timm ResNet: RM on each block (shortcut-free blocks as they are)."""
    layers: list[nn.Module] = []
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        for index, block in enumerate(getattr(model, stage)):
            path = f"{stage}.{index}"
            if not getattr(block, "has_shortcut", True):
                layers += shortcut_free_block_layers(block, path)
            else:
                layers += reserve_and_merge(resnet_block_branch(block, path), downsample, fuse_bn=fuse_bn)
    return layers


@register_reader(_is_torchvision_resnet, "torchvision ResNet / ResNeXt / Wide ResNet")
def read_torchvision_resnet(model: nn.Module, downsample: DownsampleType, fuse_bn: bool) -> list[nn.Module]:
    layers = plain_layers(_named(conv1=model.conv1, bn1=model.bn1, relu=model.relu), "")
    layers += _maxpool(model.maxpool, "maxpool")
    layers += resnet_stage_layers(model, downsample, fuse_bn)
    return layers + [nn.AdaptiveAvgPool2d(1), nn.Flatten(1), model.fc]


def _maxpool(module: nn.Module, path: str) -> list[nn.Module]:
    if _is_inactive(module):
        return []
    if isinstance(module, nn.MaxPool2d):
        return [module]
    raise UnsupportedModuleError(path, module, "only MaxPool2d (or none) is supported after the stem")


def _is_timm_resnet(model: nn.Module) -> bool:
    from timm.models.resnet import ResNet

    return isinstance(model, ResNet)


def timm_head(model: nn.Module, path_pool: str = "global_pool", path_fc: str = "fc") -> list[nn.Module]:
    """timm's SelectAdaptivePool2d('avg') + Linear head as plain layers."""
    pool = getattr(model, path_pool)
    pool_type = getattr(pool, "pool_type", None)
    if pool_type != "avg":
        raise UnsupportedModuleError(path_pool, pool, f"only average pooling is supported, got {pool_type!r}")
    fc = getattr(model, path_fc)
    head: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
    if isinstance(fc, nn.Linear):
        head.append(fc)
    elif not isinstance(fc, nn.Identity):
        raise UnsupportedModuleError(path_fc, fc, "only a Linear classifier (or none) is supported")
    return head


def shortcut_free_block_layers(block: nn.Module, path: str) -> list[nn.Module]:
    """A block whose class declares ``has_shortcut = False`` (ResDistill students): its chain as is."""
    n = 3 if hasattr(block, "conv3") else 2
    names = {f"{kind}{i}": None for i in range(1, n + 1) for kind in ("conv", "bn", "act")}
    _require_known_children(block, path, set(names) | {"downsample"})
    chain = _named(**{f"{kind}{i}": getattr(block, f"{kind}{i}") for i in range(1, n + 1)
                      for kind in ("conv", "bn", "act")})
    return plain_layers(chain, path)


@register_reader(_is_timm_resnet, "timm ResNet family (BasicBlock / Bottleneck, conv or deep stem)")
def read_timm_resnet(model: nn.Module, downsample: DownsampleType, fuse_bn: bool) -> list[nn.Module]:
    layers = plain_layers(_named(conv1=model.conv1, bn1=model.bn1, act1=model.act1), "")
    layers += _maxpool(model.maxpool, "maxpool")
    layers += resnet_stage_layers(model, downsample, fuse_bn)
    return layers + timm_head(model)


def _is_torchvision_mobilenet_v2(model: nn.Module) -> bool:
    from torchvision.models.mobilenetv2 import MobileNetV2

    return isinstance(model, MobileNetV2)


def inverted_residual_layers(block: nn.Module, path: str, downsample: DownsampleType, fuse_bn: bool
                             ) -> list[nn.Module]:
    """A torchvision InvertedResidual: RM where it has a residual, plain layers otherwise.

    Its input is the previous block's linear projection, so it can be negative: reserved channels
    pass the ReLU6 unchanged through a :class:`ChannelwiseClamp`.
    """
    leaves = flatten_leaves(block.conv, f"{path}.conv")
    if not block.use_res_connect:
        return plain_layers(block.conv, f"{path}.conv")
    branch = branch_from_leaves(leaves, None, out_act=None, input_nonnegative=False, path=path)
    return reserve_and_merge(branch, downsample, fuse_bn=fuse_bn)


@register_reader(_is_torchvision_mobilenet_v2, "torchvision MobileNetV2 (-> RMNetV1 -> MobileNetV1)")
def read_torchvision_mobilenet_v2(model: nn.Module, downsample: DownsampleType, fuse_bn: bool) -> list[nn.Module]:
    from torchvision.models.mobilenetv2 import InvertedResidual

    layers: list[nn.Module] = []
    for index, module in enumerate(model.features):
        path = f"features.{index}"
        if isinstance(module, InvertedResidual):
            layers += inverted_residual_layers(module, path, downsample, fuse_bn)
        else:
            layers += plain_layers(module, path)
    return layers + [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)] + plain_layers(model.classifier, "classifier")


def repvgg_block_layers(block: nn.Module, path: str) -> list[nn.Module]:
    """A timm RepVggBlock (of a working copy) re-parameterised by timm into conv + activation."""
    block.reparameterize()
    _require_inactive(block, path, ("attn",))
    act = _activation(block.act, f"{path}.act")
    return [block.reparam_conv] + ([] if act is None else [act])


def _is_rmnet(model: nn.Module) -> bool:
    from ..models.rmnet import RMNet

    return isinstance(model, RMNet)


@register_reader(_is_rmnet, "replication RMNet (rmnet*)")
def read_rmnet(model: nn.Module, downsample: DownsampleType, fuse_bn: bool) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for index, block in enumerate(model.stem):
        layers += repvgg_block_layers(block, f"stem.{index}")
    for stage_index, stage in enumerate(model.stages):
        for block_index, block in enumerate(stage):
            path = f"stages.{stage_index}.{block_index}"
            if block.reparam is not None:  # already in deploy form
                layers += list(block.reparam)
            else:
                layers += reserve_and_merge(resnet_block_branch(block, path), downsample, fuse_bn=fuse_bn)
    return layers + timm_head(model)


def _is_class(module_path: str, class_name: str) -> Callable[[nn.Module], bool]:
    def matches(model: nn.Module) -> bool:
        import importlib

        return isinstance(model, getattr(importlib.import_module(module_path), class_name))

    return matches


@register_reader(_is_class("replication.models.repvgg_variants", "RepVGGResNet"), "replication RepVGG-from-ResNet")
def read_repvgg_resnet(model: nn.Module, downsample: DownsampleType, fuse_bn: bool) -> list[nn.Module]:
    layers = plain_layers(model.stem, "stem")
    for stage_index, stage in enumerate(model.stages):
        for block_index, block in enumerate(stage):
            layers += repvgg_block_layers(block, f"stages.{stage_index}.{block_index}")
    return layers + timm_head(model)


def _is_repvgg_byobnet(model: nn.Module) -> bool:
    from timm.models.byobnet import ByobNet, RepVggBlock

    if not isinstance(model, ByobNet):
        return False
    blocks = [model.stem] + [b for stage in model.stages for b in stage]
    return all(isinstance(b, RepVggBlock) for b in blocks)


@register_reader(_is_repvgg_byobnet, "timm RepVGG (ByobNet of RepVggBlocks)")
def read_repvgg_byobnet(model: nn.Module, downsample: DownsampleType, fuse_bn: bool) -> list[nn.Module]:
    layers = repvgg_block_layers(model.stem, "stem")
    for stage_index, stage in enumerate(model.stages):
        for block_index, block in enumerate(stage):
            layers += repvgg_block_layers(block, f"stages.{stage_index}.{block_index}")
    if not _is_inactive(model.final_conv):
        raise UnsupportedModuleError("final_conv", model.final_conv, "a final conv is not supported")
    return layers + timm_head(model.head)


@register_reader(_is_class("replication.models.diracnet", "DiracNet"), "replication DiracNet")
def read_diracnet(model: nn.Module, downsample: DownsampleType, fuse_bn: bool) -> list[nn.Module]:
    from ..models.diracnet import DiracConv2d

    features = nn.Sequential(*[m.fuse() if isinstance(m, DiracConv2d) else m for m in model.features])
    return plain_layers(features, "features") + timm_head(model)


@register_reader(_is_class("replication.models.mobilenet_cifar", "MobileNetV1"), "replication MobileNetV1")
def read_mobilenet_v1(model: nn.Module, downsample: DownsampleType, fuse_bn: bool) -> list[nn.Module]:
    return (plain_layers(model.features, "features") + [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
            + plain_layers(model.classifier, "classifier"))


def _is_torchvision_vgg(model: nn.Module) -> bool:
    from torchvision.models.vgg import VGG

    return isinstance(model, VGG)


@register_reader(_is_torchvision_vgg, "torchvision VGG (already plain: BN folded only)")
def read_torchvision_vgg(model: nn.Module, downsample: DownsampleType, fuse_bn: bool) -> list[nn.Module]:
    return (plain_layers(model.features, "features") + [model.avgpool, nn.Flatten(1)]
            + plain_layers(model.classifier, "classifier"))
