"""RepVGG baselines timm does not have, built from timm's ``RepVggBlock``.

- ``repvgg18`` / ``repvgg34`` (paper Table 3, Appendix A.2): a ResNet with every BasicBlock (in -> out,
  stride s) replaced by two RepVGG blocks (in -> out stride s, out -> out), the ResNet stem kept.
  Against ResNet-18/34 they lose the shortcut 1x1 convs: 11.5 M / 1.80 GMACs vs 11.7 M / 1.82 G.
- ``repvgg_depth{21,37,69,133}_cifar`` (Figure 5): the same construction from the depth-study ResNets
  of :mod:`.resnet_variants`, CIFAR stem.
- ``repvgg_a2_cifar`` (Table 1, CIFAR rows): timm's RepVGG-A2 with a stride-1 stem and a stride-1 first
  stage, the reading under which the paper's 1.67 GMACs on 32x32 inputs comes out.

Deploy form: ``timm.utils.reparameterize_model`` (each RepVggBlock fuses its branches into one 3x3 conv).
"""

import dataclasses
import functools
from typing import Any, cast

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.byobnet import ByoBlockCfg, ByobNet, ByoModelCfg, RepVggBlock, get_layer_fns, model_cfgs
from torch import nn

from .. import rm
from ..rm.readers.common import plain_layers
from ..rm.readers.timm import repvgg_block_layers, timm_head
from .classifier_head import ClassifierHeadMixin
from .defaults import CIFAR_CFG, STAGE_WIDTHS, default_cfg
from .feature_taps import StemStagesMixin
from .resnet_variants import DEPTH_STUDY_LAYERS

__all__ = ["CifarRepVgg", "RepVGGResNet"]



class RepVGGResNet(StemStagesMixin, ClassifierHeadMixin, nn.Module):
    """ResNet layout with two RepVGG blocks per ResNet BasicBlock (Appendix A.2).

    ``stem_type="imagenet"``: 7x7 stride-2 conv + BN + ReLU + 3x3 stride-2 max-pool (the ResNet stem);
    ``"cifar"``: 3x3 stride-1 conv + BN + ReLU. Input (N, in_chans, H, W) -> logits (N, num_classes).
    Feature taps: the stem and each stage.
    """

    def __init__(self, layers: tuple[int, ...], stem_type: str = "imagenet", num_classes: int = 1000,
                 in_chans: int = 3, drop_rate: float = 0.0, global_pool: str = "avg",
                 widths: tuple[int, ...] = STAGE_WIDTHS, device=None, dtype=None) -> None:
        super().__init__()
        if stem_type not in ("imagenet", "cifar"):
            raise ValueError(f"RepVGGResNet: stem_type must be 'imagenet' or 'cifar', got {stem_type!r}")
        dd = {"device": device, "dtype": dtype}
        self.in_chans = in_chans
        if stem_type == "imagenet":
            self.stem = nn.Sequential(nn.Conv2d(in_chans, widths[0], 7, 2, 3, bias=False, **dd),
                                      nn.BatchNorm2d(widths[0], **dd), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
            reduction = 4
        else:
            self.stem = nn.Sequential(nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False, **dd),
                                      nn.BatchNorm2d(widths[0], **dd), nn.ReLU(inplace=True))
            reduction = 1
        self.feature_info = [dict(num_chs=widths[0], reduction=reduction, module=f"stem.{len(self.stem) - 1}")]
        stages, in_chs = [], widths[0]
        for index, (resnet_blocks, width) in enumerate(zip(layers, widths)):
            blocks = []
            for block_index in range(resnet_blocks):
                stride = 2 if index > 0 and block_index == 0 else 1
                blocks += [RepVggBlock(in_chs, width, stride=stride, **dd), RepVggBlock(width, width, **dd)]
                in_chs = width
            reduction *= 2 if index > 0 else 1
            stages.append(nn.Sequential(*blocks))
            self.feature_info.append(dict(num_chs=width, reduction=reduction, module=f"stages.{index}"))
        self.stages = nn.Sequential(*stages)
        self.num_features = in_chs
        self._init_head(num_classes, drop_rate, global_pool, **dd)


class CifarRepVgg(ByobNet):
    """timm's RepVGG (a ``ByobNet``) with a stride-1 RepVGG stem, built in the constructor (so that
    ``features_only`` wraps the model as it is); ``feature_info`` reductions follow the stem's stride 1."""

    def __init__(self, cfg: ByoModelCfg, in_chans: int = 3, device=None, dtype=None, **kwargs: Any) -> None:
        super().__init__(cfg, in_chans=in_chans, device=device, dtype=dtype, **kwargs)
        stem_chs = self.stem.conv_kxk.conv.out_channels
        self.stem = RepVggBlock(in_chans, stem_chs, stride=1, layers=get_layer_fns(cfg), device=device, dtype=dtype)
        for info in self.feature_info:  # timm counted the usual stride-2 stem
            info["reduction"] //= 2
        if self.feature_info[0]["stage"] != 0:  # a stride-1 first stage: timm lists no stem tap, add it
            self.feature_info.insert(0, dict(num_chs=stem_chs, reduction=1, module="stem", stage=0))
        self.stage_ends = [info["stage"] for info in self.feature_info]


default_cfgs = generate_default_cfgs({
    "repvgg18.untrained": default_cfg("stem.0"),
    "repvgg34.untrained": default_cfg("stem.0"),
    **{f"repvgg_depth{d}_cifar.untrained": default_cfg("stem.0", **CIFAR_CFG) for d in DEPTH_STUDY_LAYERS},
    "repvgg_a2_cifar.untrained": default_cfg("stem.conv_kxk.conv", "head.fc", **CIFAR_CFG),
})


def _create(variant: str, layers: tuple[int, ...], stem_type: str, pretrained: bool, **kwargs: Any) -> RepVGGResNet:
    return build_model_with_cfg(RepVGGResNet, variant, pretrained, layers=layers, stem_type=stem_type,
                                feature_cfg=dict(flatten_sequential=True), **kwargs)


@register_model
def repvgg18(pretrained: bool = False, **kwargs: Any) -> RepVGGResNet:
    """RepVGG-18: ResNet-18 with each BasicBlock replaced by two RepVGG blocks (Table 3)."""
    return _create("repvgg18", (2, 2, 2, 2), "imagenet", pretrained, **kwargs)


@register_model
def repvgg34(pretrained: bool = False, **kwargs: Any) -> RepVGGResNet:
    """RepVGG-34: ResNet-34 with each BasicBlock replaced by two RepVGG blocks (Table 3)."""
    return _create("repvgg34", (3, 4, 6, 3), "imagenet", pretrained, **kwargs)


@register_model
def repvgg_depth21_cifar(pretrained: bool = False, **kwargs: Any) -> RepVGGResNet:
    return _create("repvgg_depth21_cifar", DEPTH_STUDY_LAYERS[21], "cifar", pretrained, **kwargs)


@register_model
def repvgg_depth37_cifar(pretrained: bool = False, **kwargs: Any) -> RepVGGResNet:
    return _create("repvgg_depth37_cifar", DEPTH_STUDY_LAYERS[37], "cifar", pretrained, **kwargs)


@register_model
def repvgg_depth69_cifar(pretrained: bool = False, **kwargs: Any) -> RepVGGResNet:
    return _create("repvgg_depth69_cifar", DEPTH_STUDY_LAYERS[69], "cifar", pretrained, **kwargs)


@register_model
def repvgg_depth133_cifar(pretrained: bool = False, **kwargs: Any) -> RepVGGResNet:
    return _create("repvgg_depth133_cifar", DEPTH_STUDY_LAYERS[133], "cifar", pretrained, **kwargs)


@register_model
def repvgg_a2_cifar(pretrained: bool = False, widths: tuple[int, ...] | None = None, **kwargs: Any) -> ByobNet:
    """timm's RepVGG-A2 with a stride-1 stem and first stage, for 32x32 inputs (Table 1, CIFAR).

    ``widths``: the four stage widths (paper: 96-192-384-1408); the stem is as wide as the first stage
    when that is under the paper's 64 (narrow profiles)."""
    base = model_cfgs["repvgg_a2"]
    stages = [cast(ByoBlockCfg, stage) for stage in base.blocks]  # RepVGG-A2's stages are single ByoBlockCfgs
    if widths is not None:
        if len(widths) != len(stages):
            raise ValueError(f"repvgg_a2_cifar: widths needs {len(stages)} stage widths, got {tuple(widths)}")
        stages = [dataclasses.replace(stage, c=int(width)) for stage, width in zip(stages, widths)]
    blocks = (dataclasses.replace(stages[0], s=1), *stages[1:])
    stem_chs = min(base.stem_chs, int(widths[0])) if widths is not None else base.stem_chs
    cfg = dataclasses.replace(base, blocks=blocks, stem_chs=stem_chs)
    return build_model_with_cfg(CifarRepVgg, "repvgg_a2_cifar", pretrained, model_cfg=cfg,
                                feature_cfg=dict(flatten_sequential=True), **kwargs)


# --- RM conversion: this family's reader (the RM core knows nothing of this package) ---

@rm.register_reader(RepVGGResNet, "replication RepVGG-from-ResNet")
def read_repvgg_resnet(model: RepVGGResNet, downsample: rm.blocks.DownsampleType, fuse_bn: bool) -> list[rm.Part]:
    """Plain stem, every RepVggBlock re-parameterised by timm, timm head: no residual left to remove."""
    parts = [rm.plain_part("stem", model.stem, lambda: plain_layers(model.stem, "stem"))]
    for stage_index, stage in enumerate(model.stages.children()):
        for block_index, block in enumerate(stage.children()):
            path = f"stages.{stage_index}.{block_index}"
            parts.append(rm.plain_part(path, block, functools.partial(repvgg_block_layers, block, path)))
    return parts + [rm.plain_part("fc", model.fc, lambda: timm_head(model))]
