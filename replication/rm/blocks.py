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

Average-pool shortcuts (ResNet-D, timm's ``avg_down``): the shortcut is a 2x2 stride-2 average, then
the 1x1 projection. A 3x3 stride-2 conv with padding 1 reads input rows 2i-1, 2i, 2i+1 for output row
i, so weight 1/4 at the four taps over rows and columns 2i, 2i+1 makes its reserved channels carry
that average instead of one pixel. The average of non-negative values is non-negative, so the ReLU
keeps it; the projection is merged as before (both types; the average commutes with the 1x1 conv and
with BN, since its weights sum to 1). This holds when every window lies inside the input, i.e. for an
even input size: at an odd size the pool (``ceil_mode=True, count_include_pad=False``) divides its
border windows by 2 or 1, which no conv can do. The block's layers therefore start with a
:class:`SpatialSizeGuard` that refuses such an input, naming its size.

Reserved channels keep BatchNorm in the form of paper Eq. 2 (identity BN) until the caller fuses BN;
that BN is a :class:`ReservedBatchNorm2d`, which records the reserved span. The output is exact up to
floating-point rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import torch
from torch import nn

from .activations import reserved_activation
from .errors import UnsupportedModuleError
from .guards import SpatialSizeGuard
from .primitives import ConvBN, concat_batchnorms, copy_filters, copy_taps, identity_batchnorm, new_conv, spread_kernel
from .reserved import ReservedBatchNorm2d

DownsampleType = Literal["dirac", "prelu"]
DOWNSAMPLE_TYPES = ("dirac", "prelu")


@dataclass
class ResidualBranch:
    """``out_act(units[-1](... act[0](units[0](x))) + shortcut(avg_s(x)))``.

    ``acts[i]`` follows ``units[i]`` (``len(acts) == len(units) - 1``); ``shortcut`` is None for the
    identity; ``input_nonnegative`` says the block input is known to be >= 0 (after a ReLU), which lets
    plain ReLUs carry reserved channels. ``shortcut_average`` is the window ``s`` of an ``s x s``,
    stride-``s`` average pool before the shortcut (1: none).
    """

    units: list[ConvBN]
    acts: list[nn.Module | None]
    shortcut: ConvBN | None
    out_act: nn.Module | None
    input_nonnegative: bool
    path: str = ""
    shortcut_average: int = 1


def _fused_bias(conv: nn.Conv2d) -> torch.Tensor:
    """The bias of a conv from :meth:`ConvBN.fused`, which always gives one."""
    return cast(torch.Tensor, conv.bias).detach()


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
    bn = ReservedBatchNorm2d.concat(unit.bn, reserved_bn)
    return ConvBN(new_conv(weight, None, unit.conv, groups=groups), bn)


def reserve_input(unit: ConvBN, channels: int, path: str, window: int = 1) -> ConvBN:
    """Append ``channels`` filters that copy the unit's input: out C_out -> C_out + C_in.

    ``window`` 1: Dirac filters (paper Eq. 1), sampling the input at the conv's stride; ``window`` s:
    the s x s average the conv's stride-s windows cover (an average-pool shortcut).
    """
    conv = unit.conv
    if conv.groups != 1:
        raise UnsupportedModuleError(path, conv, "the first conv of a residual branch must have groups=1 "
                                     "to reserve its input")
    taps = copy_taps(conv, window, path)
    if conv.in_channels != channels:
        raise UnsupportedModuleError(path, conv, f"expects {conv.in_channels} input channels, block has {channels}")
    unit = _normalized(unit)
    weight = torch.cat([unit.conv.weight.detach(), copy_filters(channels, taps)])
    return _widened(unit, weight, 1, channels)


def reserve_projection(unit: ConvBN, shortcut: ConvBN, path: str, window: int = 1) -> ConvBN:
    """Type-1 downsample: the projection's 1x1 kernel, spread over the conv's copy taps (its centre, or
    the average window), becomes extra filters of the first conv."""
    unit, shortcut = _normalized(unit), _normalized(shortcut)
    conv = unit.conv
    if conv.groups != 1:
        raise UnsupportedModuleError(path, conv, "type-1 (prelu) downsample needs groups=1 in the first conv")
    taps = copy_taps(conv, window, path)
    if unit.bn is not None and shortcut.bn is not None and unit.bn.eps == shortcut.bn.eps:
        weight = torch.cat([conv.weight.detach(), spread_kernel(shortcut.conv.weight.detach(), taps)])
        return ConvBN(new_conv(weight, None, conv), concat_batchnorms(unit.bn, shortcut.bn))
    main, proj = unit.fused(), shortcut.fused()
    weight = torch.cat([main.weight.detach(), spread_kernel(proj.weight.detach(), taps)])
    bias = torch.cat([_fused_bias(main), _fused_bias(proj)])
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


def reserve_through(unit: ConvBN, reserved: int, path: str, window: int = 1) -> ConvBN:
    """Widen a middle unit: inputs [h, r] -> outputs [unit(h), r], r copied (``window`` as in
    :func:`reserve_input`)."""
    unit = _normalized(unit)
    conv = unit.conv
    taps = copy_taps(conv, window, path)
    groups = conv.groups
    if groups > 1 and conv.in_channels != conv.out_channels:
        raise UnsupportedModuleError(path, conv, "a grouped middle conv must keep its channel count")
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
    weight[out_idx, local_in] = taps
    return _widened(unit, weight, new_groups, reserved)


def merge_shortcut(unit: ConvBN, shortcut: ConvBN | None, reserved: int, path: str, window: int = 1
                   ) -> nn.Conv2d:
    """Last conv with the shortcut folded in as extra input channels: [W, S] on [h, r], bias b + b_s.

    ``S`` is a Dirac (identity shortcut) or the projection's 1x1 kernel on the conv's copy taps (its
    centre, or the average window). The BN of the last unit is fused first, since
    BN(W h + r) != BN(W h) + r.
    """
    conv = unit.conv
    if conv.groups != 1:
        raise UnsupportedModuleError(path, conv, "the last conv of a residual branch must have groups=1")
    taps = copy_taps(conv, window, path)
    fused = unit.fused()
    if shortcut is None:
        if reserved != conv.out_channels:
            raise UnsupportedModuleError(path, conv, f"identity shortcut with {reserved} channels cannot "
                                         f"be added to {conv.out_channels} outputs")
        extra = copy_filters(reserved, taps)
        bias = _fused_bias(fused)
    else:
        proj = shortcut.fused()
        extra = spread_kernel(proj.weight.detach(), taps)
        bias = _fused_bias(fused) + _fused_bias(proj)
    weight = torch.cat([fused.weight.detach(), extra], dim=1)
    return new_conv(weight, bias, conv)


def _strided_unit(branch: ResidualBranch) -> int | None:
    """Index of the unit that carries the shortcut's average (None without one), checked."""
    window = branch.shortcut_average
    if window == 1:
        return None
    strided = [i for i, unit in enumerate(branch.units) if _stride(unit.conv) != (1, 1)]
    if len(strided) != 1 or _stride(branch.units[strided[0]].conv) != (window, window):
        strides = [_stride(unit.conv) for unit in branch.units]
        raise UnsupportedModuleError(f"{branch.path}.downsample", None,
                                     f"a {window}x{window} average-pool shortcut needs exactly one stride-{window} "
                                     f"conv in the branch to carry the average; the branch strides are {strides}")
    return strided[0]


def _check_shortcut(branch: ResidualBranch) -> None:
    shortcut = branch.shortcut
    total = _total_stride(branch.units)
    window = branch.shortcut_average
    if shortcut is None:
        if total != (window, window):
            raise UnsupportedModuleError(branch.path, None, f"branch stride {total} differs from the identity "
                                         f"shortcut's stride {(window, window)}")
        return
    conv = shortcut.conv
    if conv.kernel_size != (1, 1) or conv.groups != 1 or tuple(conv.padding) != (0, 0):
        raise UnsupportedModuleError(f"{branch.path}.downsample", conv,
                                     "only a 1x1 ungrouped, unpadded projection shortcut is supported")
    stride = (_stride(conv)[0] * window, _stride(conv)[1] * window)
    if stride != total:
        raise UnsupportedModuleError(f"{branch.path}.downsample", conv,
                                     f"shortcut stride {stride} differs from the branch stride {total}")


def reserved_width(branch: ResidualBranch, downsample: DownsampleType) -> int:
    """Channels RM reserves through the branch: the projection's outputs (type 1 with a projection)
    or the block input (otherwise)."""
    if downsample == "prelu" and branch.shortcut is not None:
        return branch.shortcut.out_channels
    return branch.units[0].conv.in_channels


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
            out_act=branch.out_act, input_nonnegative=branch.input_nonnegative, path=branch.path,
            shortcut_average=branch.shortcut_average)
    if downsample not in DOWNSAMPLE_TYPES:
        raise ValueError(f"downsample must be one of {DOWNSAMPLE_TYPES}, got {downsample!r}")
    units, acts = branch.units, branch.acts
    if len(units) < 2 or len(acts) != len(units) - 1:
        raise UnsupportedModuleError(branch.path, None, "a residual branch needs at least two convs")
    _check_shortcut(branch)
    strided = _strided_unit(branch)

    def window(i: int) -> int:  # the unit that carries the shortcut's average, if there is one
        return branch.shortcut_average if i == strided else 1

    channels = units[0].conv.in_channels
    layers: list[nn.Module] = []
    if strided is not None:
        layers.append(SpatialSizeGuard(branch.shortcut_average, branch.path))
    shortcut = branch.shortcut
    use_projection_first = downsample == "prelu" and shortcut is not None
    if use_projection_first and shortcut is not None:
        first = reserve_projection(units[0], shortcut, f"{branch.path}.conv1", window(0))
        reserved = shortcut.out_channels
        reserved_nonneg = False
    else:
        first = reserve_input(units[0], channels, f"{branch.path}.conv1", window(0))
        reserved = channels
        reserved_nonneg = branch.input_nonnegative
    current = first
    for i, act in enumerate(acts):
        if i > 0:
            current = reserve_through(units[i], reserved, f"{branch.path}.conv{i + 1}", window(i))
        layers.extend(current.modules())
        activation = reserved_activation(act, units[i].out_channels, reserved,
                                         reserved_nonnegative=reserved_nonneg, like=current.conv.weight,
                                         path=f"{branch.path}.act{i + 1}")
        if activation is not None:
            layers.append(activation)
    merge_with = None if use_projection_first else branch.shortcut
    last = len(units) - 1
    merged = merge_shortcut(units[-1], merge_with, reserved, f"{branch.path}.conv{len(units)}", window(last))
    layers.append(merged)
    if branch.out_act is not None and not isinstance(branch.out_act, nn.Identity):
        out = reserved_activation(branch.out_act, units[-1].out_channels, 0, reserved_nonnegative=True,
                                  like=merged.weight, path=f"{branch.path}.out_act")
        if out is not None:
            layers.append(out)
    return layers
