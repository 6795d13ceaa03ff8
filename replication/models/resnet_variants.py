"""ResNet baselines timm does not have: CIFAR stems, the ResDistill plain student, depth-study ResNets.

All are timm ``ResNet`` instances (so timm tooling and ``replication.rm.convert`` apply):

- CIFAR stem (``stem_type="cifar"``): a 3x3 stride-1 conv, no max-pool, as in the CIFAR ResNets the
  paper compares with (ResNet-34 on 32x32: 1.16 GMACs).
- ResDistill plain student (Li et al., 2020): the same network with every shortcut removed, including
  the projection convs; a plain network trained by distillation from its ResNet teacher.
- Depth study (Figure 5, Appendix A.2): BasicBlock ResNets of depth 21 / 37 / 69 / 133, where depth
  counts the stem conv and two convs per block (the classifier is not counted, so depth = 1 + 2 x
  blocks). Blocks per stage [2, 3, 3, 2], [4, 5, 5, 4], [8, 9, 9, 8], [16, 17, 17, 16]: the paper does
  not list its stage split; this one keeps stages near-equal and hits the stated depths exactly.
"""

from typing import Any, cast

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.resnet import BasicBlock, Bottleneck, ResNet
from torch import nn

from .defaults import CIFAR_CFG, default_cfg

__all__ = ["CifarResNet", "PlainBasicBlock", "PlainBottleneck", "cifar_stem_", "DEPTH_STUDY_LAYERS"]

DEPTH_STUDY_LAYERS = {21: (2, 3, 3, 2), 37: (4, 5, 5, 4), 69: (8, 9, 9, 8), 133: (16, 17, 17, 16)}


class PlainBasicBlock(BasicBlock):
    """A BasicBlock without its shortcut (ResDistill student): act(bn2(conv2(act(bn1(conv1(x))))))."""

    has_shortcut = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.downsample = None

    def zero_init_last(self) -> None:
        # timm zeroes the last BN so a residual block starts as its shortcut; without a shortcut that
        # would make the block (and the whole network) output a constant, so the student never trains.
        pass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        return self.act2(self.bn2(self.conv2(x)))


class PlainBottleneck(Bottleneck):
    """A Bottleneck without its shortcut (ResDistill student)."""

    has_shortcut = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.downsample = None

    def zero_init_last(self) -> None:
        pass  # no shortcut: a zeroed last BN would make the block output a constant (see PlainBasicBlock)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        return self.act3(self.bn3(self.conv3(x)))


class CifarResNet(ResNet):
    """timm's ``ResNet`` with the CIFAR stem built in its constructor: the 7x7 stride-2 conv and the
    max-pool become one 3x3 stride-1 conv, so ``feature_info`` reductions are 1, 1, 2, 4, 8 (and
    ``features_only`` wraps the model as it is)."""

    def __init__(self, block: Any, layers: tuple[int, ...], in_chans: int = 3, device=None, dtype=None,
                 **kwargs: Any) -> None:  # block: a block class (timm annotates it as an instance)
        super().__init__(block, layers, in_chans=in_chans, device=device, dtype=dtype, **kwargs)
        cifar_stem_(self, in_chans, device=device, dtype=dtype)


def cifar_stem_(model: ResNet, in_chans: int, device=None, dtype=None) -> ResNet:
    """Replace the 7x7 stride-2 stem and max-pool with a 3x3 stride-1 conv, in place; fix ``feature_info``."""
    width = cast(int, model.feature_info[0]["num_chs"])  # the stem's tap (act1): its output channels
    conv = nn.Conv2d(in_chans, width, 3, 1, 1, bias=False, device=device, dtype=dtype)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    model.add_module("conv1", conv)  # add_module replaces the registered stem conv and pool
    model.add_module("maxpool", nn.Identity())
    # timm's taps: act1 (/2), layer1 (/4, after the pool), layer2-4 (/8 ... /32): all 4x smaller now,
    # except act1, which only loses the stem conv's stride
    for index, info in enumerate(model.feature_info):
        info["reduction"] = 1 if index == 0 else cast(int, info["reduction"]) // 4
    return model


def _create(variant: str, block: type[nn.Module], layers: tuple[int, ...], cifar: bool, pretrained: bool,
            **kwargs: Any) -> ResNet:
    return build_model_with_cfg(CifarResNet if cifar else ResNet, variant, pretrained, block=block,
                                layers=tuple(layers), **kwargs)



default_cfgs = generate_default_cfgs({
    "resnet18_cifar.untrained": default_cfg("conv1", **CIFAR_CFG),
    "resnet34_cifar.untrained": default_cfg("conv1", **CIFAR_CFG),
    "resdistill34_cifar.untrained": default_cfg("conv1", **CIFAR_CFG),
    "resdistill34.untrained": default_cfg("conv1"),
    "resdistill50.untrained": default_cfg("conv1"),
    **{f"resnet_depth{d}_cifar.untrained": default_cfg("conv1", **CIFAR_CFG) for d in DEPTH_STUDY_LAYERS},
})


@register_model
def resnet18_cifar(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-18 with the CIFAR stem."""
    return _create("resnet18_cifar", BasicBlock, (2, 2, 2, 2), True, pretrained, **kwargs)


@register_model
def resnet34_cifar(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-34 with the CIFAR stem (paper Table 1, CIFAR rows)."""
    return _create("resnet34_cifar", BasicBlock, (3, 4, 6, 3), True, pretrained, **kwargs)


@register_model
def resdistill34_cifar(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResDistill plain student: ResNet-34 without shortcuts, CIFAR stem."""
    return _create("resdistill34_cifar", PlainBasicBlock, (3, 4, 6, 3), True, pretrained, **kwargs)


@register_model
def resdistill34(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResDistill plain student: ResNet-34 without shortcuts, ImageNet stem."""
    return _create("resdistill34", PlainBasicBlock, (3, 4, 6, 3), False, pretrained, **kwargs)


@register_model
def resdistill50(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResDistill plain student: ResNet-50 without shortcuts (paper Table 1, ImageNet)."""
    return _create("resdistill50", PlainBottleneck, (3, 4, 6, 3), False, pretrained, **kwargs)


@register_model
def resnet_depth21_cifar(pretrained: bool = False, **kwargs: Any) -> ResNet:
    return _create("resnet_depth21_cifar", BasicBlock, DEPTH_STUDY_LAYERS[21], True, pretrained, **kwargs)


@register_model
def resnet_depth37_cifar(pretrained: bool = False, **kwargs: Any) -> ResNet:
    return _create("resnet_depth37_cifar", BasicBlock, DEPTH_STUDY_LAYERS[37], True, pretrained, **kwargs)


@register_model
def resnet_depth69_cifar(pretrained: bool = False, **kwargs: Any) -> ResNet:
    return _create("resnet_depth69_cifar", BasicBlock, DEPTH_STUDY_LAYERS[69], True, pretrained, **kwargs)


@register_model
def resnet_depth133_cifar(pretrained: bool = False, **kwargs: Any) -> ResNet:
    return _create("resnet_depth133_cifar", BasicBlock, DEPTH_STUDY_LAYERS[133], True, pretrained, **kwargs)
