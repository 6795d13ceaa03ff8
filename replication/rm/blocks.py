"""Reserve and Merge on one residual block (paper sections 3.1-3.3).

A residual block is described by :class:`ResidualBranch`: a chain of conv(+BN) units with an
activation after every unit but the last, a shortcut (identity or a 1x1 conv+BN projection), and the
activation after the addition. :func:`reserve_and_merge` turns it into a list of plain layers
(convs, BNs, activations) with the same output:

- ``downsample="dirac"`` (paper Fig. 2b, "type 2", and the plain Fig. 1 case): every unit but the
  last gets extra Dirac filters that carry the block input through (subsampled by the unit's stride);
  the last conv gets the shortcut's kernel (a Dirac for the identity) as extra input channels, so the
  addition happens inside it. For a BasicBlock with C -> 2C channels: C -> 3C -> 2C, 81 C^2 weights.
- ``downsample="prelu"`` (paper Fig. 2a, "type 1", projection blocks only): the projection's 1x1 kernel,
  zero-padded, joins the first conv; its outputs can be negative, so they pass the activations through
  PReLU slope 1; the last conv merges them with Dirac input channels. BasicBlock: C -> 4C -> 2C,
  108 C^2 + 4C weights.

Reserved channels keep BatchNorm in the form of paper Eq. 2 (identity BN) until the caller fuses BN.
The output is exact up to floating-point rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from .activations import reserved_activation
from .errors import UnsupportedModuleError
from .primitives import (ConvBN, check_centred, concat_batchnorms, dirac_filters, identity_batchnorm,
                         new_conv, pad_kernel)

DownsampleType = Literal["dirac", "prelu"]
DOWNSAMPLE_TYPES = ("dirac", "prelu")


@dataclass
class ResidualBranch:
    """``out_act(units[-1](... act[0](units[0](x))) + shortcut(x))``.

    ``acts[i]`` follows ``units[i]`` (``len(acts) == len(units) - 1``); ``shortcut`` is None for the
    identity; ``input_nonnegative`` says the block input is known to be >= 0 (after a ReLU), which lets
    plain ReLUs carry reserved channels.
    """

    units: list[ConvBN]
    acts: list[nn.Module | None]
    shortcut: ConvBN | None
    out_act: nn.Module | None
    input_nonnegative: bool
    path: str = ""


def _stride(conv: nn.Conv2d) -> tuple[int, int]:
    return tuple(conv.stride)  # type: ignore[return-value]


def _total_stride(units: list[ConvBN]) -> tuple[int, int]:
    sh, sw = 1, 1
    for unit in units:
        sh, sw = sh * unit.conv.stride[0], sw * unit.conv.stride[1]
    return sh, sw


def _normalized(unit: ConvBN) -> ConvBN:
    """A conv with its own bias before a BN is folded to one biased conv, so BNs can be concatenated."""
    if unit.bn is not None and unit.conv.bias is not None:
        return ConvBN(unit.fused(), None)
    return unit


def _widened(unit: ConvBN, weight: torch.Tensor, groups: int, reserved: int) -> ConvBN:
    """The unit with ``weight``; reserved channels get a zero bias, or an identity BN (Eq. 2)."""
    if unit.bn is None:
        bias = None
        if unit.conv.bias is not None:
            bias = torch.cat([unit.conv.bias.detach(), weight.new_zeros(reserved)])
        return ConvBN(new_conv(weight, bias, unit.conv, groups=groups), None)
    reserved_bn = identity_batchnorm(reserved, eps=unit.bn.eps, like=weight)
    bn = concat_batchnorms(unit.bn, reserved_bn)
    bn.rm_reserved = (unit.bn.num_features, bn.num_features)  # identity channels, for fine-tuning calibration
    return ConvBN(new_conv(weight, None, unit.conv, groups=groups), bn)


def reserve_input(unit: ConvBN, channels: int, path: str) -> ConvBN:
    """Append ``channels`` Dirac filters that copy the unit's input: out C_out -> C_out + C_in."""
    conv = unit.conv
    if conv.groups != 1:
        raise UnsupportedModuleError(path, conv, "the first conv of a residual branch must have groups=1 "
                                     "to reserve its input")
    check_centred(conv, path)
    if conv.in_channels != channels:
        raise UnsupportedModuleError(path, conv, f"expects {conv.in_channels} input channels, block has {channels}")
    unit = _normalized(unit)
    dirac = dirac_filters(channels, conv.kernel_size[0], like=conv.weight)
    weight = torch.cat([unit.conv.weight.detach(), dirac])
    return _widened(unit, weight, 1, channels)


def reserve_projection(unit: ConvBN, shortcut: ConvBN, path: str) -> ConvBN:
    """Type-1 downsample: the projection's padded 1x1 kernel becomes extra filters of the first conv."""
    unit, shortcut = _normalized(unit), _normalized(shortcut)
    conv = unit.conv
    if conv.groups != 1:
        raise UnsupportedModuleError(path, conv, "type-1 (prelu) downsample needs groups=1 in the first conv")
    check_centred(conv, path)
    k = conv.kernel_size[0]
    if unit.bn is not None and shortcut.bn is not None and unit.bn.eps == shortcut.bn.eps:
        weight = torch.cat([conv.weight.detach(), pad_kernel(shortcut.conv.weight.detach(), k)])
        return ConvBN(new_conv(weight, None, conv), concat_batchnorms(unit.bn, shortcut.bn))
    main, proj = unit.fused(), shortcut.fused()
    weight = torch.cat([main.weight.detach(), pad_kernel(proj.weight.detach(), k)])
    bias = torch.cat([main.bias.detach(), proj.bias.detach()])
    return ConvBN(new_conv(weight, bias, conv), None)


def _grouping_with_reserved(channels: int, groups: int, reserved: int) -> int:
    """Largest group count for ``channels + reserved`` channels that keeps every original group whole.

    The original groups (``channels / groups`` wide) must each lie inside one new group; reserved
    channels sit at the same index on input and output, so they are in a valid group whatever the
    count. A depthwise conv stays depthwise; a ResNeXt conv keeps its group width when it can.
    """
    total = channels + reserved
    width = channels // groups
    for new_groups in range(total, 0, -1):
        if total % new_groups:
            continue
        size = total // new_groups
        if size % width == 0 or size >= channels:
            return new_groups
    return 1


def reserve_through(unit: ConvBN, reserved: int, path: str) -> ConvBN:
    """Widen a middle unit: inputs [h, r] -> outputs [unit(h), r], r copied by Dirac filters."""
    unit = _normalized(unit)
    conv = unit.conv
    check_centred(conv, path)
    groups = conv.groups
    if groups > 1 and conv.in_channels != conv.out_channels:
        raise UnsupportedModuleError(path, conv, "a grouped middle conv must keep its channel count")
    k = conv.kernel_size[0]
    c_in, c_out = conv.in_channels, conv.out_channels
    new_groups = _grouping_with_reserved(c_in, groups, reserved) if groups > 1 else 1
    size_in = (c_in + reserved) // new_groups
    size_out = (c_out + reserved) // new_groups
    weight = conv.weight.new_zeros(c_out + reserved, size_in, *conv.kernel_size)
    w = conv.weight.detach()
    in_per, out_per = c_in // groups, c_out // groups
    for g in range(groups):
        first_out = g * out_per
        new_group = first_out // size_out
        offset = g * in_per - new_group * size_in
        weight[first_out:first_out + out_per, offset:offset + in_per] = w[first_out:first_out + out_per]
    r = torch.arange(reserved, device=w.device)
    out_idx = c_out + r
    local_in = (c_in + r) - (out_idx // size_out) * size_in
    weight[out_idx, local_in, k // 2, conv.kernel_size[1] // 2] = 1.0
    return _widened(unit, weight, new_groups, reserved)


def merge_shortcut(unit: ConvBN, shortcut: ConvBN | None, reserved: int, path: str) -> nn.Conv2d:
    """Last conv with the shortcut folded in as extra input channels: [W, S] on [h, r], bias b + b_s.

    ``S`` is a Dirac (identity shortcut) or the projection's 1x1 kernel padded to the conv's size. The
    BN of the last unit is fused first, since BN(W h + r) != BN(W h) + r.
    """
    conv = unit.conv
    if conv.groups != 1:
        raise UnsupportedModuleError(path, conv, "the last conv of a residual branch must have groups=1")
    check_centred(conv, path)
    fused = unit.fused()
    k = conv.kernel_size[0]
    if shortcut is None:
        if reserved != conv.out_channels:
            raise UnsupportedModuleError(path, conv, f"identity shortcut with {reserved} channels cannot "
                                         f"be added to {conv.out_channels} outputs")
        extra = dirac_filters(reserved, k, like=fused.weight)
        bias = fused.bias.detach()
    else:
        proj = shortcut.fused()
        extra = pad_kernel(proj.weight.detach(), k)
        bias = fused.bias.detach() + proj.bias.detach()
    weight = torch.cat([fused.weight.detach(), extra], dim=1)
    return new_conv(weight, bias, conv)


def _check_shortcut(branch: ResidualBranch) -> None:
    shortcut = branch.shortcut
    if shortcut is None:
        if any(s != 1 for s in _total_stride(branch.units)):
            raise UnsupportedModuleError(branch.path, None, "strided branch with an identity shortcut")
        return
    conv = shortcut.conv
    if conv.kernel_size != (1, 1) or conv.groups != 1 or tuple(conv.padding) != (0, 0):
        raise UnsupportedModuleError(f"{branch.path}.downsample", conv,
                                     "only a 1x1 ungrouped, unpadded projection shortcut is supported")
    if _stride(conv) != _total_stride(branch.units):
        raise UnsupportedModuleError(f"{branch.path}.downsample", conv,
                                     f"shortcut stride {_stride(conv)} differs from the branch stride "
                                     f"{_total_stride(branch.units)}")


def reserve_and_merge(branch: ResidualBranch, downsample: DownsampleType = "dirac", *,
                      fuse_bn: bool = False) -> list[nn.Module]:
    """The plain layers equal to the residual block described by ``branch``.

    Input (N, C, H, W) -> output (N, C_out, H / s, W / s) exactly as the block, with layers
    ``[conv, BN, act, ..., conv(with bias), out_act]``. Only BN-bearing units keep a BN, unless
    ``fuse_bn``, which folds every BN first so each widened weight is written once.
    """
    if fuse_bn:
        branch = ResidualBranch(
            units=[ConvBN(unit.fused()) for unit in branch.units], acts=branch.acts,
            shortcut=ConvBN(branch.shortcut.fused()) if branch.shortcut is not None else None,
            out_act=branch.out_act, input_nonnegative=branch.input_nonnegative, path=branch.path)
    if downsample not in DOWNSAMPLE_TYPES:
        raise ValueError(f"downsample must be one of {DOWNSAMPLE_TYPES}, got {downsample!r}")
    units, acts = branch.units, branch.acts
    if len(units) < 2 or len(acts) != len(units) - 1:
        raise UnsupportedModuleError(branch.path, None, "a residual branch needs at least two convs")
    _check_shortcut(branch)
    channels = units[0].conv.in_channels
    layers: list[nn.Module] = []
    use_projection_first = downsample == "prelu" and branch.shortcut is not None
    if use_projection_first:
        first = reserve_projection(units[0], branch.shortcut, f"{branch.path}.conv1")
        reserved = branch.shortcut.out_channels
        reserved_nonneg = False
    else:
        first = reserve_input(units[0], channels, f"{branch.path}.conv1")
        reserved = channels
        reserved_nonneg = branch.input_nonnegative
    current = first
    for i, act in enumerate(acts):
        if i > 0:
            current = reserve_through(units[i], reserved, f"{branch.path}.conv{i + 1}")
        layers.extend(current.modules())
        activation = reserved_activation(act, units[i].out_channels, reserved,
                                         reserved_nonnegative=reserved_nonneg, like=current.conv.weight,
                                         path=f"{branch.path}.act{i + 1}")
        if activation is not None:
            layers.append(activation)
    merge_with = None if use_projection_first else branch.shortcut
    layers.append(merge_shortcut(units[-1], merge_with, reserved, f"{branch.path}.conv{len(units)}"))
    if branch.out_act is not None and not isinstance(branch.out_act, nn.Identity):
        out = reserved_activation(branch.out_act, units[-1].out_channels, 0, reserved_nonnegative=True,
                                  like=layers[-1].weight, path=f"{branch.path}.out_act")
        if out is not None:
            layers.append(out)
    return layers
