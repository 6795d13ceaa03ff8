"""The pieces of the RM operation, each exact on its own.

Shapes follow PyTorch: a conv weight is (out_channels, in_channels / groups, kH, kW).

- :func:`dirac_filters`: filters that copy input channels to output channels (paper Eq. 1).
- :func:`identity_batchnorm`: a BN that is the identity for given running statistics (paper Eq. 2).
- :func:`pad_kernel`: zero-pad a 1x1 kernel to kxk so it can share a kxk conv (paper Fig. 2).
- :func:`copy_taps`, :func:`copy_filters`, :func:`spread_kernel`: the same for any spatial "copy"
  kernel: the centre tap (a Dirac), or the taps of an s x s average a stride-s conv covers.
- :func:`fuse_pointwise`: two consecutive 1x1 convs with no non-linearity between them (paper Eq. 4).
- :class:`ConvBN`: a conv and its optional BN, the unit the reserve / merge steps work on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeGuard, cast

import torch
from torch import nn
from torch.nn.utils import skip_init
from torch.nn.utils.fusion import fuse_conv_bn_weights

from .errors import RMConversionError, UnsupportedModuleError


@dataclass
class ConvBN:
    """A conv followed by an optional BatchNorm (both in eval mode)."""

    conv: nn.Conv2d
    bn: nn.BatchNorm2d | None = None

    @property
    def out_channels(self) -> int:
        return self.conv.out_channels

    def fused(self) -> nn.Conv2d:
        """The conv with the BN folded into its weight and bias (always has a bias)."""
        if self.bn is None:
            bias = self.conv.bias if self.conv.bias is not None else self.conv.weight.new_zeros(self.out_channels)
            return new_conv(self.conv.weight.clone(), bias.clone(), self.conv, groups=self.conv.groups)
        return fold_batchnorm(self.conv, self.bn)

    def modules(self) -> list[nn.Module]:
        return [self.conv] if self.bn is None else [self.conv, self.bn]


def dirac_filters(channels: int, kernel_size: int, *, like: torch.Tensor) -> torch.Tensor:
    """Weight of shape (channels, channels, k, k) whose conv copies each input channel (Eq. 1).

    Used with padding (k - 1) // 2 and any stride, the conv samples its input at the strided
    positions exactly as a 1x1 conv of the same stride would.
    """
    weight = torch.zeros(channels, channels, kernel_size, kernel_size, dtype=like.dtype, device=like.device)
    index = torch.arange(channels, device=like.device)
    weight[index, index, kernel_size // 2, kernel_size // 2] = 1.0  # nn.init.dirac_, without its Python loop
    return weight


def pad_kernel(weight: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Zero-pad a (out, in, 1, 1) kernel to (out, in, k, k) with the 1 tap at the centre."""
    if weight.shape[-2:] != (1, 1):
        raise RMConversionError(f"only 1x1 kernels can be padded, got {tuple(weight.shape[-2:])}")
    if kernel_size % 2 != 1:
        raise RMConversionError(f"a 1x1 kernel can only be centred in an odd kernel, got {kernel_size}")
    pad = kernel_size // 2
    return nn.functional.pad(weight, [pad, pad, pad, pad])


def copy_taps(conv: nn.Conv2d, window: int, path: str) -> torch.Tensor:
    """A (kH, kW) kernel that, in ``conv``'s geometry, copies one input channel to one output channel.

    ``window == 1``: 1 at the centre tap, so the output samples the input at the conv's stride (the
    Dirac of Eq. 1). ``window == s > 1``: 1 / s^2 on the s x s taps over input rows and columns
    ``s*i .. s*i + s - 1``, so the output is the ``AvgPool2d(s, s)`` of the input wherever that
    window lies inside the input. A k x k conv with stride s, padding (k - 1) / 2 and no dilation
    reads rows ``s*i - (k-1)/2 .. s*i + (k-1)/2``; the window fits when ``s <= (k + 1) / 2`` (a 3x3
    conv carries a 2x2 average). Dtype and device follow ``conv.weight``.
    """
    check_centred(conv, path)
    kh, kw = conv.kernel_size
    taps = conv.weight.new_zeros(kh, kw)
    if window == 1:
        taps[kh // 2, kw // 2] = 1.0
        return taps
    if tuple(conv.stride) != (window, window) or tuple(conv.dilation) != (1, 1):
        raise UnsupportedModuleError(path, conv, f"a {window}x{window} average can only be carried by an undilated "
                                     f"stride-{window} conv, this one has stride {tuple(conv.stride)} and "
                                     f"dilation {tuple(conv.dilation)}")
    ph, pw = cast(tuple[int, int], conv.padding)  # centred (checked above): (k - 1) / 2
    if ph + window > kh or pw + window > kw:
        raise UnsupportedModuleError(path, conv, f"a {kh}x{kw} kernel cannot cover the {window}x{window} average "
                                     f"window of the shortcut (it needs a kernel of at least {2 * window - 1})")
    taps[ph:ph + window, pw:pw + window] = 1.0 / (window * window)
    return taps


def copy_filters(channels: int, taps: torch.Tensor) -> torch.Tensor:
    """Weight (channels, channels, kH, kW) with ``taps`` from input channel c to output channel c only."""
    weight = taps.new_zeros(channels, channels, *taps.shape)
    index = torch.arange(channels, device=taps.device)
    weight[index, index] = taps
    return weight


def spread_kernel(weight: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """A (out, in, 1, 1) kernel applied at the taps of ``taps`` (out, in, kH, kW): with the centre tap
    this is :func:`pad_kernel`; with average taps, the 1x1 conv of the average (the two commute)."""
    if weight.shape[-2:] != (1, 1):
        raise RMConversionError(f"only 1x1 kernels can be spread over taps, got {tuple(weight.shape[-2:])}")
    return weight * taps


def identity_batchnorm(num_features: int, *, eps: float = 1e-5, running_mean: torch.Tensor | None = None,
                       running_var: torch.Tensor | None = None, like: torch.Tensor | None = None
                       ) -> nn.BatchNorm2d:
    """A BatchNorm2d in eval mode that returns its input unchanged (paper Eq. 2).

    With running statistics mu, sigma^2: weight = sqrt(sigma^2 + eps), bias = mu, so
    ``weight * (x - mu) / sqrt(sigma^2 + eps) + bias == x``. The statistics default to 0 and 1;
    fine-tuning passes statistics measured on training data so the BN is stable once training starts.
    """
    dtype = like.dtype if like is not None else torch.get_default_dtype()
    device = like.device if like is not None else None
    bn = nn.BatchNorm2d(num_features, eps=eps, dtype=dtype, device=device)
    # A BatchNorm2d built with the default track_running_stats=True has both buffers.
    bn_mean, bn_var = cast(torch.Tensor, bn.running_mean), cast(torch.Tensor, bn.running_var)
    with torch.no_grad():
        if running_mean is not None:
            bn_mean.copy_(running_mean)
        if running_var is not None:
            bn_var.copy_(running_var)
        bn.weight.copy_(torch.sqrt(bn_var + eps))
        bn.bias.copy_(bn_mean)
    return bn.eval()


def concat_batchnorms(first: nn.BatchNorm2d, second: nn.BatchNorm2d) -> nn.BatchNorm2d:
    """One BN over the channels of ``first`` followed by those of ``second``; eps of both must agree."""
    if first.eps != second.eps:
        raise RMConversionError(f"cannot concatenate BatchNorms with eps {first.eps} and {second.eps}")
    ref = first.weight
    bn = nn.BatchNorm2d(first.num_features + second.num_features, eps=first.eps,
                        dtype=ref.dtype, device=ref.device)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, name).copy_(torch.cat([getattr(first, name), getattr(second, name)]))
    return bn.eval()


def new_conv(weight: torch.Tensor, bias: torch.Tensor | None, like: nn.Conv2d, *, groups: int = 1,
             stride: int | tuple[int, int] | None = None) -> nn.Conv2d:
    """A Conv2d that takes ownership of ``weight`` and ``bias`` (no copy, no random init), with the
    geometry (padding, dilation, stride) of ``like``. Pass freshly computed tensors only."""
    out_channels, in_per_group, kh, kw = weight.shape
    conv = skip_init(nn.Conv2d, in_per_group * groups, out_channels, (kh, kw),
                     stride=like.stride if stride is None else stride, padding=like.padding,
                     dilation=like.dilation, groups=groups, bias=bias is not None,
                     dtype=weight.dtype, device=weight.device)
    conv.weight = nn.Parameter(weight.detach().contiguous(), requires_grad=False)
    if bias is not None:
        conv.bias = nn.Parameter(bias.detach().contiguous(), requires_grad=False)
    return conv.eval()


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """``conv`` followed by ``bn`` (eval mode) as one new biased conv (torch.nn.utils.fusion)."""
    # An eval-mode BN to fold has running statistics (the readers refuse one without).
    weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias, cast(torch.Tensor, bn.running_mean),
                                        cast(torch.Tensor, bn.running_var), bn.eps, bn.weight, bn.bias)
    return new_conv(weight, bias, conv, groups=conv.groups)


def exact_batchnorm_(bn: nn.modules.batchnorm._BatchNorm, path: str) -> None:
    """Make ``bn`` (of a working copy) a BN the RM operation can read, in place, or refuse it.

    ``affine=False`` is the same function as weight 1 and bias 0, so those are set (it then converts,
    fused or kept). A BN without running statistics (``track_running_stats=False``) normalises every
    batch by that batch's own statistics, in eval mode too: it is no fixed affine map, so no plain
    network equals it, and it raises :class:`UnsupportedModuleError` naming ``path``.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise UnsupportedModuleError(path, bn, "it keeps no running statistics (track_running_stats=False), so it "
                                     "normalises each batch by that batch's own statistics even in eval mode: no "
                                     "fixed conv equals it")
    with torch.no_grad():
        if bn.weight is None:
            bn.weight = nn.Parameter(torch.ones_like(bn.running_var))
        if bn.bias is None:
            bn.bias = nn.Parameter(torch.zeros_like(bn.running_mean))
    bn.affine = True


def exact_batchnorms_(model: nn.Module, prefix: str = "") -> nn.Module:
    """:func:`exact_batchnorm_` on every BatchNorm of ``model`` (a working copy), paths under ``prefix``."""
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            exact_batchnorm_(module, ".".join(part for part in (prefix, name) if part))
    return model


def check_centred(conv: nn.Conv2d, path: str) -> None:
    """Dirac filters and padded 1x1 kernels are exact only in a 'same'-padded conv."""
    if isinstance(conv.padding, str):
        raise UnsupportedModuleError(path, conv, f"string padding {conv.padding!r} is not supported")
    for k, p, d in zip(conv.kernel_size, conv.padding, conv.dilation):
        if k % 2 != 1 or p != d * (k - 1) // 2:
            raise UnsupportedModuleError(
                path, conv, f"kernel {conv.kernel_size} with padding {conv.padding} and dilation "
                f"{conv.dilation} is not centred, so identity filters cannot be inserted")
    if conv.padding_mode != "zeros":
        raise UnsupportedModuleError(path, conv, f"padding_mode {conv.padding_mode!r} is not supported")


def is_pointwise(conv: nn.Module) -> TypeGuard[nn.Conv2d]:
    return (isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.groups == 1
            and conv.padding in ((0, 0), "valid"))


def fuse_pointwise(first: nn.Conv2d, second: nn.Conv2d) -> nn.Conv2d:
    """One 1x1 conv equal to ``second(first(x))`` (paper Eq. 4): W = W2 W1, b = W2 b1 + b2.

    Both convs must be 1x1, ungrouped and unpadded; the strides multiply, since a strided 1x1 conv
    is a subsampling followed by a per-pixel matrix product.
    """
    if not (is_pointwise(first) and is_pointwise(second)):
        raise RMConversionError("fuse_pointwise needs two 1x1, groups=1, unpadded convs")
    w1 = first.weight.flatten(1)
    w2 = second.weight.flatten(1)
    b1 = first.bias if first.bias is not None else torch.zeros_like(w1[:, 0])
    b2 = second.bias if second.bias is not None else torch.zeros_like(w2[:, 0])
    weight = (w2 @ w1)[:, :, None, None]
    bias = w2 @ b1 + b2
    stride = (first.stride[0] * second.stride[0], first.stride[1] * second.stride[1])
    return new_conv(weight.detach(), bias.detach(), first, stride=stride)
