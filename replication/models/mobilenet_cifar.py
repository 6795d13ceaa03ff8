"""MobileNetV1 and the MobileNetV2 whose RM + fuse result is exactly that MobileNetV1 (paper 3.3, 4.3).

MobileNetV1 is a chain of depthwise 3x3 convs of widths ``w_k`` (stride ``s_k``), each followed by a
pointwise conv to ``w_{k+1}`` (Howard et al., 2017; CIFAR stem: a stride-1 3x3 conv to 32 channels).

The MobileNetV2 is designed backwards from it. After RM, a residual block k has depthwise width
``hidden_k + c_k`` (reserved input channels), and its projection fuses with the next block's expansion
into one pointwise conv. So block k gets bottleneck ``c_k = w_k / bottleneck_divisor`` and hidden width
``w_k - c_k`` where it can be residual (stride 1, same bottleneck in and out), ``w_k`` where it cannot.
With the default divisor 4 (bottlenecks 16, 32, 64, 128, 256) residual blocks expand 3x and the
others 4x. The paper does not publish
its MobileNetV2; this one matches its V1 exactly and is documented here, not tuned to a FLOP count.

Both are torchvision modules (MobileNetV2 with ReLU6), so ``replication.rm.convert`` turns the V2 into
the V1 structure: ``convert(v2, fuse_pointwise=False)`` is RMNetV1, ``convert(v2)`` the fused V1 form.
"""

from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import torch
from timm.layers import SelectAdaptivePool2d, get_device_dtype
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn
from torchvision.models.mobilenetv2 import MobileNetV2
from torchvision.ops.misc import Conv2dNormActivation

from .. import rm
from ..rm.readers.common import plain_layers
from .defaults import CIFAR_CFG, default_cfg
from .feature_taps import FlatFeaturesMixin, stride_taps

__all__ = ["MobileNetV1", "MOBILENET_V1_PLAN", "mobilenet_v2_setting", "MobileNetV2", "MobileNetV2RM"]

# (depthwise width, depthwise stride); each depthwise conv is followed by a pointwise conv to the next width.
MOBILENET_V1_PLAN = ((32, 1), (64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 1), (512, 1),
                     (512, 1), (512, 1), (512, 2), (1024, 1))
LAST_WIDTH = 1024


def _init_like_torchvision(module: nn.Module) -> None:
    """torchvision's MobileNetV2 initialisation: convs Kaiming-normal (fan out), linears N(0, 0.01)."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out")
        elif isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, 0, 0.01)
            nn.init.zeros_(layer.bias)


class MobileNetHeadMixin(FlatFeaturesMixin):
    """timm's model interface for the torchvision-style MobileNets: ``features`` (a flat chain, tapped at
    the last layer of each resolution), ``global_pool``, then ``classifier`` = Dropout + Linear (the
    torchvision layout, so state_dict keys stay ``classifier.1.*``)."""

    num_features: int
    num_classes: int
    head_hidden_size: int
    if TYPE_CHECKING:  # provided by nn.Module and the model class; TorchScript never reads these
        training: bool
        features: nn.Sequential
        global_pool: SelectAdaptivePool2d

    def _init_timm(self, num_classes: int, in_chans: int, drop_rate: float, global_pool: str) -> None:
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.feature_info = stride_taps(self.features, "features")
        self.reset_classifier(num_classes, global_pool)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(stem=r"^features\.0\.", blocks=r"^features\.(\d+)")

    @torch.jit.ignore
    def get_classifier(self, name_only: bool = False) -> str | nn.Module:
        return "classifier.1" if name_only else self.classifier[1]

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """New classifier for ``num_classes`` (0: none); ``global_pool`` None keeps the current pooling."""
        dd = get_device_dtype(self)
        self.num_classes = num_classes
        if global_pool is None:
            global_pool = self.global_pool.pool_type
        self.global_pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=bool(global_pool))
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()
        fc = nn.Linear(self.head_hidden_size, num_classes, **dd) if num_classes > 0 else nn.Identity()
        self.classifier = nn.Sequential(nn.Dropout(self.drop_rate), fc).train(self.training)
        self.global_pool.train(self.training)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.classifier[0](self.global_pool(x))
        return x if pre_logits else self.classifier[1](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _factory(device, dtype) -> Any:
    """torch's default-device context for layers built by torchvision (which take no device argument)."""
    return torch.device(device) if device is not None else nullcontext()


class MobileNetV1(MobileNetHeadMixin, nn.Module):
    """MobileNetV1: stem conv, 13 (depthwise 3x3 + pointwise 1x1) pairs, each conv + BN + ReLU6, then
    average pool and Linear. ``stem_stride`` 2 for ImageNet, 1 for CIFAR."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, stem_stride: int = 2, drop_rate: float = 0.0,
                 plan: tuple[tuple[int, int], ...] = MOBILENET_V1_PLAN, last_width: int = LAST_WIDTH,
                 global_pool: str = "avg", device=None, dtype=None) -> None:
        super().__init__()
        with _factory(device, dtype):
            layers: list[nn.Module] = [Conv2dNormActivation(in_chans, plan[0][0], 3, stem_stride,
                                                            activation_layer=nn.ReLU6)]
            for index, (width, stride) in enumerate(plan):
                out = plan[index + 1][0] if index + 1 < len(plan) else last_width
                layers += [Conv2dNormActivation(width, width, 3, stride, groups=width, activation_layer=nn.ReLU6),
                           Conv2dNormActivation(width, out, 1, activation_layer=nn.ReLU6)]
            self.features = nn.Sequential(*layers)
            self.num_features = last_width
            self.global_pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=True)
            self._init_timm(num_classes, in_chans, drop_rate, global_pool)
        if dtype is not None:
            self.to(dtype=dtype)
        # torchvision's MobileNetV2 initialisation (PyTorch's default conv init otherwise): V1 trained
        # from scratch (Table 2) then differs from V2 in its architecture only.
        _init_like_torchvision(self)


def mobilenet_v2_setting(bottleneck_divisor: int = 4, first_bottleneck: int = 16,
                         plan: tuple[tuple[int, int], ...] = MOBILENET_V1_PLAN) -> list[list[float]]:
    """torchvision ``inverted_residual_setting`` rows [t, c, n, s] whose RM + fuse form is ``plan``.

    Block 0 is MobileNetV2's expand-free block (depthwise at the stem width). Every later stride-1
    block is residual: hidden ``w_k - c`` plus ``c`` reserved channels gives depthwise width ``w_k``.
    A stride-2 block expands to ``w_k`` and projects to the next bottleneck ``w_{k+1} / divisor``.
    Expansion ratios t may be fractional; torchvision's round() recovers the exact hidden widths.
    """
    def next_bottleneck(index: int) -> int:
        width = plan[index + 1][0] if index + 1 < len(plan) else plan[index][0]
        if width % bottleneck_divisor:
            raise ValueError(f"MobileNetV2 design: width {width} is not divisible by {bottleneck_divisor}")
        return width // bottleneck_divisor

    rows: list[list[float]] = [[1, first_bottleneck, 1, plan[0][1]]]
    bottleneck = first_bottleneck
    for index in range(1, len(plan)):
        width, stride = plan[index]
        if stride == 1:
            if width <= bottleneck:
                raise ValueError(f"MobileNetV2 design: residual block {index} of width {width} cannot reserve "
                                 f"a bottleneck of {bottleneck} channels")
            rows.append([(width - bottleneck) / bottleneck, bottleneck, 1, 1])
        else:
            out = next_bottleneck(index)
            rows.append([width / bottleneck, out, 1, stride])
            bottleneck = out
    return rows


class MobileNetV2RM(MobileNetHeadMixin, MobileNetV2):
    """torchvision's MobileNetV2 with the RM design (:func:`mobilenet_v2_setting`), the V1 plan's stem
    stride and last width (1024), and timm's model interface."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, stem_stride: int = 2, drop_rate: float = 0.2,
                 bottleneck_divisor: int = 4, global_pool: str = "avg", device=None, dtype=None,
                 **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"MobileNetV2 (RM design) got unexpected arguments: {', '.join(sorted(kwargs))}")
        setting = mobilenet_v2_setting(bottleneck_divisor)
        with _factory(device, dtype):
            super().__init__(num_classes=max(num_classes, 1), inverted_residual_setting=setting, round_nearest=1,
                             dropout=drop_rate)
            # torchvision fixes the stem stride (2) and the last width (1280): set both to the V1 plan's.
            self.features[0] = Conv2dNormActivation(in_chans, MOBILENET_V1_PLAN[0][0], 3, stem_stride,
                                                    activation_layer=nn.ReLU6)
            self.features[-1] = Conv2dNormActivation(int(setting[-1][1]), LAST_WIDTH, 1, activation_layer=nn.ReLU6)
            self.last_channel = self.num_features = LAST_WIDTH
            self.global_pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=True)
            self._init_timm(num_classes, in_chans, drop_rate, global_pool)
        if dtype is not None:
            self.to(dtype=dtype)
        for module in (self.features[0], self.features[-1], self.classifier):
            _init_like_torchvision(module)


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return default_cfg("features.0.0", "classifier.1", **{**CIFAR_CFG, "pool_size": (2, 2)}, **kwargs)


default_cfgs = generate_default_cfgs({
    "mobilenetv2_rm_cifar.untrained": _cfg(),
    "mobilenetv1_cifar.untrained": _cfg(),
})


@register_model
def mobilenetv2_rm_cifar(pretrained: bool = False, **kwargs: Any) -> MobileNetV2RM:
    """MobileNetV2 designed so that RM + fuse gives ``mobilenetv1_cifar``'s structure (Table 2)."""
    return build_model_with_cfg(MobileNetV2RM, "mobilenetv2_rm_cifar", pretrained,
                                feature_cfg=dict(flatten_sequential=True),
                                **dict(dict(stem_stride=1), **kwargs))


@register_model
def mobilenetv1_cifar(pretrained: bool = False, **kwargs: Any) -> MobileNetV1:
    """MobileNetV1 with a stride-1 stem for 32x32 inputs (Table 2)."""
    return build_model_with_cfg(MobileNetV1, "mobilenetv1_cifar", pretrained, feature_cfg=dict(flatten_sequential=True),
                                **dict(dict(stem_stride=1), **kwargs))


# --- RM conversion: this family's reader (the RM core knows nothing of this package) ---

@rm.register_reader(MobileNetV1, "replication MobileNetV1")
def read_mobilenet_v1(model: MobileNetV1, downsample: rm.blocks.DownsampleType, fuse_bn: bool) -> list[rm.Part]:
    """Already plain: BN folded only."""
    return [rm.plain_part("features", model.features, lambda: plain_layers(model.features, "features")),
            rm.plain_part("classifier", model.classifier, lambda: [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
                          + plain_layers(model.classifier, "classifier"))]
