"""Helpers every reader uses: walking modules in forward order, checking that a branch-free stretch
is plain, and reading a residual block into a :class:`ResidualBranch`.

Anything not recognised raises :class:`UnsupportedModuleError` naming its path and type, so a
conversion is never silently wrong. Layer types are matched exactly where a subclass could change
the forward (timm's ``Conv2dSame`` pads at run time, ``BatchNormAct2d`` applies an activation).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from timm.layers import BatchNormAct2d, ConvNormAct
from torch import nn
from torch.nn.modules.utils import _pair

from ..activations import is_supported_activation
from ..blocks import ResidualBranch
from ..errors import UnsupportedModuleError
from ..primitives import ConvBN

__all__ = [
    "activation", "average_window", "branch_from_leaves", "flatten_leaves", "identity_conv", "is_inactive",
    "is_nonnegative_activation", "named", "parse_shortcut", "plain_batchnorm", "plain_layers", "require_conv_bn",
    "require_inactive", "require_known_children", "resnet_block_branch", "shortcut_free_block_layers",
]


def is_inactive(module: Any) -> bool:
    """Modules that are the identity in eval mode (dropout, drop-path, drop-block, nn.Identity)."""
    if module is None or type(module) in (nn.Identity, nn.Dropout):
        return True
    return type(module).__name__ in {"DropPath", "DropBlock2d", "DropBlockFast2d"}


def require_inactive(block: nn.Module, path: str, names: tuple[str, ...]) -> None:
    for name in names:
        module = getattr(block, name, None)
        if not is_inactive(module):
            raise UnsupportedModuleError(f"{path}.{name}", module,
                                         "this layer inside a residual block has no RM conversion")


def require_known_children(block: nn.Module, path: str, known: set[str]) -> None:
    for name, child in block.named_children():
        if name not in known and not is_inactive(child):
            raise UnsupportedModuleError(f"{path}.{name}", child, "unexpected layer inside a residual block")


def activation(module: nn.Module | None, path: str) -> nn.Module | None:
    if not is_supported_activation(module):
        raise UnsupportedModuleError(path, module, "unsupported activation (ReLU or ReLU6 expected)")
    return module


def is_nonnegative_activation(module: nn.Module | None) -> bool:
    """Whether the output of ``module`` is known to be >= 0 (a ReLU or ReLU6 follows)."""
    return module is not None and is_supported_activation(module) and not isinstance(module, nn.Identity)


def plain_batchnorm(bn: nn.BatchNorm2d, path: str) -> nn.BatchNorm2d:
    """``bn`` as a plain ``nn.BatchNorm2d`` with running statistics (a copy for a subclass)."""
    if bn.running_mean is None or bn.running_var is None:
        raise UnsupportedModuleError(path, bn, "a BatchNorm without running statistics has no fixed eval form")
    if type(bn) is nn.BatchNorm2d:
        return bn
    ref = bn.running_mean
    plain = nn.BatchNorm2d(bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                           dtype=ref.dtype, device=ref.device)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            source = getattr(bn, name)
            if source is not None:
                getattr(plain, name).copy_(source)
    return plain.eval()


def _expand(module: nn.Module, path: str) -> list[tuple[str, nn.Module]] | None:
    """Children of a container whose forward runs them in order, or None for a leaf."""
    def join(name: str) -> str:
        return f"{path}.{name}" if path else name

    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
        return [(join(name), child) for name, child in module.named_children()]
    if isinstance(module, ConvNormAct):  # conv -> bn (a norm-act) -> aa
        return [(join(name), getattr(module, name)) for name in ("conv", "bn", "aa") if hasattr(module, name)]
    if isinstance(module, BatchNormAct2d):  # batch_norm -> drop -> act, as its forward
        return [(path, plain_batchnorm(module, path)), (join("drop"), module.drop), (join("act"), module.act)]
    return None


def flatten_leaves(module: nn.Module, path: str) -> list[tuple[str, nn.Module]]:
    """Leaf modules of nested containers (Sequential, timm ConvNormAct / BatchNormAct2d, torchvision
    Conv2dNormActivation) in forward order, with their paths. A BatchNormAct2d becomes a plain BN and
    its activation."""
    children = _expand(module, path)
    if children is None:
        return [(path, module)]
    leaves = []
    for child_path, child in children:
        # a BatchNormAct2d's own BN comes back under its path, already a leaf
        leaves.extend([(child_path, child)] if child_path == path else flatten_leaves(child, child_path))
    return leaves


_PLAIN_TYPES = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.MaxPool2d, nn.AdaptiveAvgPool2d,
                nn.Flatten, nn.Linear)


def plain_layers(module: nn.Module, path: str) -> list[nn.Module]:
    """Layers of a branch-free part of a network (stem, head), checked to be convertible."""
    layers = []
    for leaf_path, leaf in flatten_leaves(module, path):
        if is_inactive(leaf):
            continue
        if isinstance(leaf, nn.Hardtanh) and not is_supported_activation(leaf):
            raise UnsupportedModuleError(leaf_path, leaf, "unsupported activation")
        if type(leaf) not in _PLAIN_TYPES:
            raise UnsupportedModuleError(leaf_path, leaf, "this layer has no plain-network equivalent here")
        if type(leaf) is nn.BatchNorm2d:
            leaf = plain_batchnorm(leaf, leaf_path)
        layers.append(leaf)
    return layers


def require_conv_bn(conv: nn.Module, bn: nn.Module, conv_path: str, bn_path: str) -> ConvBN:
    """A conv (exactly ``nn.Conv2d``) and its BN as a :class:`ConvBN`."""
    if type(conv) is not nn.Conv2d:
        raise UnsupportedModuleError(conv_path, conv, "expected a Conv2d (a subclass may change its forward)")
    if not isinstance(bn, nn.BatchNorm2d):
        raise UnsupportedModuleError(bn_path, bn, "expected a BatchNorm2d after the conv")
    if type(bn) is not nn.BatchNorm2d and not isinstance(bn, BatchNormAct2d):
        raise UnsupportedModuleError(bn_path, bn, "expected a plain BatchNorm2d after the conv")
    return ConvBN(conv, plain_batchnorm(bn, bn_path))


def identity_conv(bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A 1x1 conv that copies its input, so a BN-only shortcut is a conv+BN projection like any other."""
    conv = nn.Conv2d(bn.num_features, bn.num_features, 1, bias=False, dtype=bn.weight.dtype, device=bn.weight.device)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(bn.num_features, dtype=bn.weight.dtype, device=bn.weight.device)
                          .view_as(conv.weight))
    return conv


def average_window(pool: nn.Module, path: str) -> int:
    """The window s of an ``AvgPool2d(s, s)`` shortcut pool (no padding), checked.

    ``ceil_mode`` and ``count_include_pad`` change only windows that cross the input border, which an
    even (multiple of s) input size never has; the converted block refuses other sizes at run time.
    """
    if type(pool) is not nn.AvgPool2d:  # timm's AvgPool2dSame pads at run time
        raise UnsupportedModuleError(path, pool, "only nn.AvgPool2d has an exact RM form in a shortcut")
    kernel, stride, padding = _pair(pool.kernel_size), _pair(pool.stride or pool.kernel_size), _pair(pool.padding)
    if kernel[0] != kernel[1] or kernel != stride or padding != (0, 0) or pool.divisor_override is not None:
        raise UnsupportedModuleError(path, pool, f"only a square s x s, stride-s, unpadded average pool has an exact "
                                     f"RM form in a shortcut (kernel {kernel}, stride {stride}, padding {padding})")
    return kernel[0]


def parse_shortcut(module: nn.Module | None, path: str) -> tuple[ConvBN | None, int]:
    """(projection, average window) of a shortcut: None for the identity, window 1 without a pool.

    Accepted: identity; [conv 1x1, BN]; [BN] (a slimming BN on an identity shortcut); any of these
    after an ``AvgPool2d(s, s)`` (ResNet-D, timm's ``avg_down``).
    """
    if module is None or isinstance(module, nn.Identity):
        return None, 1
    leaves = [(p, m) for p, m in flatten_leaves(module, path) if not is_inactive(m)]
    window = 1
    if leaves and isinstance(leaves[0][1], nn.AvgPool2d):
        window = average_window(leaves[0][1], leaves[0][0])
        leaves = leaves[1:]
    parts = [m for _, m in leaves]
    if len(parts) == 2 and isinstance(parts[0], nn.Conv2d):
        return require_conv_bn(parts[0], parts[1], leaves[0][0], leaves[1][0]), window
    if len(parts) == 1 and isinstance(parts[0], nn.BatchNorm2d) and type(parts[0]) is nn.BatchNorm2d:
        bn = plain_batchnorm(parts[0], leaves[0][0])
        return ConvBN(identity_conv(bn), bn), window
    if not parts and window > 1:
        return None, window
    names = ", ".join(type(p).__name__ for p in parts)
    raise UnsupportedModuleError(path, module, f"only an (average pool +) conv+BN projection shortcut is supported, "
                                 f"found [{names}]")


def resnet_block_branch(block: nn.Module, path: str, input_nonnegative: bool = True) -> ResidualBranch:
    """A torchvision or timm BasicBlock / Bottleneck as a :class:`ResidualBranch` (input >= 0 by default:
    every ResNet block follows a ReLU)."""
    is_bottleneck = hasattr(block, "conv3")
    n = 3 if is_bottleneck else 2
    conv_names = [f"conv{i}" for i in range(1, n + 1)]
    bn_names = [f"bn{i}" for i in range(1, n + 1)]
    act_layout = ["relu"] if hasattr(block, "relu") else [f"act{i}" for i in range(1, n + 1)]
    missing = [name for name in conv_names + bn_names + act_layout + ["downsample"] if not hasattr(block, name)]
    if missing:  # e.g. timm's SelectiveKernel blocks, Res2Net's split convs
        raise UnsupportedModuleError(path, block, f"not a BasicBlock / Bottleneck layout (no {', '.join(missing)}); "
                                     "this residual block has no RM reader")
    if hasattr(block, "relu"):  # torchvision: one ReLU module used after every conv and the addition
        act_modules = [block.relu] * n
        act_names = {"relu"}
    else:  # timm: act1..actN
        act_modules = [getattr(block, f"act{i}") for i in range(1, n + 1)]
        act_names = {f"act{i}" for i in range(1, n + 1)}
        require_inactive(block, path, ("aa", "se"))
    require_known_children(block, path, set(conv_names) | set(bn_names) | act_names | {"downsample"})
    units = [require_conv_bn(getattr(block, c), getattr(block, b), f"{path}.{c}", f"{path}.{b}")
             for c, b in zip(conv_names, bn_names)]
    acts = [activation(a, f"{path}.act") for a in act_modules]
    shortcut, window = parse_shortcut(block.downsample, f"{path}.downsample")
    return ResidualBranch(units=units, acts=acts[:-1], shortcut=shortcut, out_act=acts[-1],
                          input_nonnegative=input_nonnegative, path=path, shortcut_average=window)


def branch_from_leaves(leaves: list[tuple[str, nn.Module]], shortcut: ConvBN | None, *, out_act: nn.Module | None,
                       input_nonnegative: bool, path: str, shortcut_average: int = 1) -> ResidualBranch:
    """Parse ``[conv, BN, act, conv, BN, act, ..., conv, BN]`` into a :class:`ResidualBranch`."""
    units: list[ConvBN] = []
    acts: list[nn.Module | None] = []
    pending_act = False
    for leaf_path, leaf in leaves:
        if is_inactive(leaf):
            continue
        if isinstance(leaf, nn.Conv2d):
            if type(leaf) is not nn.Conv2d:
                raise UnsupportedModuleError(leaf_path, leaf, "expected a Conv2d (a subclass may change its forward)")
            if units and not pending_act:
                acts.append(None)
            units.append(ConvBN(leaf))
            pending_act = False
        elif type(leaf) is nn.BatchNorm2d and units and units[-1].bn is None and not pending_act:
            units[-1].bn = plain_batchnorm(leaf, leaf_path)
        elif is_supported_activation(leaf) and units and not pending_act:
            acts.append(activation(leaf, leaf_path))
            pending_act = True
        else:
            raise UnsupportedModuleError(leaf_path, leaf, "unexpected layer inside a residual block")
    if pending_act:
        raise UnsupportedModuleError(path, None, "a residual branch must end with a conv(+BN), not an activation")
    return ResidualBranch(units=units, acts=acts, shortcut=shortcut, out_act=out_act,
                          input_nonnegative=input_nonnegative, path=path, shortcut_average=shortcut_average)


def named(**modules: nn.Module) -> nn.Sequential:
    """A Sequential over existing modules, so error paths use their attribute names."""
    return nn.Sequential(OrderedDict(modules))


def shortcut_free_block_layers(block: nn.Module, path: str) -> list[nn.Module]:
    """A block whose class declares ``has_shortcut = False`` (ResDistill students): its chain as is."""
    n = 3 if hasattr(block, "conv3") else 2
    names = {f"{kind}{i}": None for i in range(1, n + 1) for kind in ("conv", "bn", "act")}
    require_known_children(block, path, set(names) | {"downsample"})
    chain = named(**{f"{kind}{i}": getattr(block, f"{kind}{i}") for i in range(1, n + 1)
                     for kind in ("conv", "bn", "act")})
    return plain_layers(chain, path)
