"""DiracNet (Zagoruyko & Komodakis, 2017), the plain-network baseline of paper Table 1.

Each 3x3 conv is parameterised as ``W = diag(alpha) I + diag(beta) normalize(V)``: I the Dirac delta
(the identity where out >= in channels), V a free kernel normalised per filter. Training learns a
residual-like function without a shortcut; ``fuse()`` (timm's hook) turns each DiracConv2d into the
plain Conv2d with that weight. Layout follows ResNet-34 without shortcuts (widths 64 / 128 / 256 / 512,
6 / 8 / 12 / 6 convs per group), downsampling by 2x2 max-pooling between groups as DiracNet does.
"""

from typing import Any

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn
from torch.nn import functional as F

from .. import rm
from ..rm.readers.common import plain_layers
from ..rm.readers.timm import timm_head
from .classifier_head import ClassifierHeadMixin
from .defaults import CIFAR_CFG, STAGE_WIDTHS, default_cfg
from .feature_taps import FlatFeaturesMixin, stride_taps

__all__ = ["DiracConv2d", "DiracNet"]


class DiracConv2d(nn.Module):
    """A 3x3 'same' conv with the Dirac parameterisation; (N, in, H, W) -> (N, out, H, W)."""

    delta: torch.Tensor  # the Dirac kernel, a non-persistent buffer

    def __init__(self, in_chs: int, out_chs: int, device=None, dtype=None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_chs, in_chs, 3, 3, **dd))
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        self.alpha = nn.Parameter(torch.ones(out_chs, **dd))
        self.beta = nn.Parameter(torch.full((out_chs,), 0.1, **dd))
        delta = torch.zeros(out_chs, in_chs, 3, 3, **dd)
        nn.init.dirac_(delta)
        self.register_buffer("delta", delta, persistent=False)

    def effective_weight(self) -> torch.Tensor:
        normalized = F.normalize(self.weight.flatten(1), dim=1).view_as(self.weight)
        return self.alpha.view(-1, 1, 1, 1) * self.delta + self.beta.view(-1, 1, 1, 1) * normalized

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.effective_weight(), padding=1)

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        """The equivalent plain conv (what timm's reparameterize_model puts in this module's place)."""
        weight = self.effective_weight()
        conv = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1, bias=False,
                         dtype=weight.dtype, device=weight.device)
        conv.weight.copy_(weight)
        return conv


class DiracNet(FlatFeaturesMixin, ClassifierHeadMixin, nn.Module):
    """DiracNet: stem conv, then groups of DiracConv2d + BN + ReLU separated by 2x2 max-pools.

    Feature taps (in the flat ``features``): the stem's ReLU and the last ReLU of each group.
    """

    def __init__(self, layers: tuple[int, ...] = (6, 8, 12, 6), widths: tuple[int, ...] = STAGE_WIDTHS,
                 stem_type: str = "imagenet", num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 global_pool: str = "avg", device=None, dtype=None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.in_chans = in_chans
        if stem_type == "imagenet":
            stem = [nn.Conv2d(in_chans, widths[0], 7, 2, 3, bias=False, **dd), nn.BatchNorm2d(widths[0], **dd),
                    nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
        elif stem_type == "cifar":
            stem = [nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False, **dd), nn.BatchNorm2d(widths[0], **dd),
                    nn.ReLU(inplace=True)]
        else:
            raise ValueError(f"DiracNet: stem_type must be 'imagenet' or 'cifar', got {stem_type!r}")
        features: list[nn.Module] = list(stem)
        in_chs = widths[0]
        for index, (count, width) in enumerate(zip(layers, widths)):
            if index > 0:
                features.append(nn.MaxPool2d(2))
            for _ in range(count):
                features += [DiracConv2d(in_chs, width, **dd), nn.BatchNorm2d(width, **dd), nn.ReLU(inplace=True)]
                in_chs = width
        self.features = nn.Sequential(*features)
        self.feature_info = stride_taps(self.features, "features", first=(2,))
        self.num_features = in_chs
        self._init_head(num_classes, drop_rate, global_pool, **dd)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(stem=r"^features\.[0-2]\.", blocks=r"^features\.(\d+)")


default_cfgs = generate_default_cfgs({
    "diracnet34.untrained": default_cfg("features.0"),
    "diracnet34_cifar.untrained": default_cfg("features.0", **CIFAR_CFG),
})


@register_model
def diracnet34(pretrained: bool = False, **kwargs: Any) -> DiracNet:
    """DiracNet-34, ImageNet stem."""
    return build_model_with_cfg(DiracNet, "diracnet34", pretrained, feature_cfg=dict(flatten_sequential=True),
                                **dict(dict(stem_type="imagenet"), **kwargs))


@register_model
def diracnet34_cifar(pretrained: bool = False, **kwargs: Any) -> DiracNet:
    """DiracNet-34, CIFAR stem (paper Table 1, CIFAR rows)."""
    return build_model_with_cfg(DiracNet, "diracnet34_cifar", pretrained,
                                feature_cfg=dict(flatten_sequential=True), **dict(dict(stem_type="cifar"), **kwargs))


# --- RM conversion: this family's reader (the RM core knows nothing of this package) ---

@rm.register_reader(DiracNet, "replication DiracNet")
def read_diracnet(model: DiracNet, downsample: rm.blocks.DownsampleType, fuse_bn: bool) -> list[rm.Part]:
    """Already plain once each DiracConv2d is fused into its conv: BN folded only."""
    def features() -> list[nn.Module]:
        fused = nn.Sequential(*[m.fuse() if isinstance(m, DiracConv2d) else m for m in model.features])
        return plain_layers(fused, "features")

    return [rm.plain_part("features", model.features, features),
            rm.plain_part("fc", model.fc, lambda: timm_head(model))]
