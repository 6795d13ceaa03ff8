"""RMNet: the inverted-residual family of paper section 4.2 (Table 1), in training and deploy form.

RMNet DxE_G: D conv layers (2 + 3 x blocks), expand ratio E, G channels per group in the first stage.
A block is 1x1 conv (in -> mid, mid = (E - 1) x out) + BN + ReLU, 3x3 grouped conv (stride s,
mid / G_stage groups) + BN + ReLU, 1x1 conv (mid -> out) + BN, plus a shortcut (identity, or 1x1
stride-s conv + BN when the shape changes), then ReLU. Outputs are 64 / 128 / 256 / 512 channels and the
group width doubles each stage, so the group count stays constant. After RM the hidden width is mid + in
(paper Table 4: 192, 320 with groups 5, ...).

Stems (chosen by name or ``stem_type``, never by class count): ``"imagenet"``: two stride-2 RepVGG
blocks 3 -> 64 -> 64; ``"cifar"``: one stride-1 RepVGG block 3 -> 64. Head: average pool + Linear(512).

Deploy form: every block has ``reparameterize()`` (timm's hook), so ``timm.utils.reparameterize_model``
gives the plain network; ``replication.rm.convert`` gives the same network as one ``nn.Sequential``.
"""

import functools
from typing import Any

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.byobnet import RepVggBlock
from torch import nn

from .. import rm
from ..rm.readers.common import resnet_block_branch
from ..rm.readers.timm import repvgg_block_layers, timm_head
from .classifier_head import ClassifierHeadMixin
from .defaults import CIFAR_CFG, STAGE_WIDTHS, default_cfg
from .feature_taps import StemStagesMixin

__all__ = ["RMBlock", "RMNet", "checkpoint_filter_fn", "deploy_repvgg_block"]

STEM_TYPES = ("imagenet", "cifar")


class RMBlock(nn.Module):
    """Inverted residual block of RMNet, input and output (N, C, H, W) >= 0.

    Training form (default): the residual block. Deploy form (``deploy=True``, or after
    :meth:`reparameterize`): ``reparam``, the plain chain its RM conversion (``"dirac"`` downsampling,
    BN folded) gives: 1x1 conv (in -> mid + in) + ReLU, 3x3 grouped conv (same group width) + ReLU,
    1x1 conv (-> out) + ReLU, so that a deploy-form model loads a converted state_dict.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, expand_ratio: int = 2,
                 group_width: int = 32, deploy: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        mid = (expand_ratio - 1) * out_chs
        if expand_ratio < 2:
            raise ValueError(f"RMBlock: expand_ratio must be >= 2 (mid = (e - 1) x out), got {expand_ratio}")
        if mid % group_width:
            raise ValueError(f"RMBlock: hidden width {mid} (= ({expand_ratio} - 1) x {out_chs}) is not divisible "
                             f"by the group width {group_width}")
        self.reparam: nn.Sequential | None = None
        if deploy:
            hidden = mid + in_chs  # the reserved input channels of RM (paper Fig. 1 and 2b)
            if hidden % group_width:
                raise ValueError(f"RMBlock: the deploy form's hidden width {hidden} (= {mid} + {in_chs}) is not "
                                 f"divisible by the group width {group_width}")
            self.reparam = nn.Sequential(
                nn.Conv2d(in_chs, hidden, 1, **dd), nn.ReLU(inplace=True),
                nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden // group_width, **dd), nn.ReLU(inplace=True),
                nn.Conv2d(hidden, out_chs, 1, **dd), nn.ReLU(inplace=True))
            return
        self.conv1 = nn.Conv2d(in_chs, mid, 1, bias=False, **dd)
        self.bn1 = nn.BatchNorm2d(mid, **dd)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid // group_width, bias=False, **dd)
        self.bn2 = nn.BatchNorm2d(mid, **dd)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(mid, out_chs, 1, bias=False, **dd)
        self.bn3 = nn.BatchNorm2d(out_chs, **dd)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_chs != out_chs:
            self.downsample = nn.Sequential(nn.Conv2d(in_chs, out_chs, 1, stride, bias=False, **dd),
                                            nn.BatchNorm2d(out_chs, **dd))
        self.act3 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam is not None:
            return self.reparam(x)
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))
        return self.act3(x + shortcut)

    def reparameterize(self) -> None:
        """Switch to the deploy form in place: the exact RM conversion of this block (timm's hook)."""
        if self.reparam is not None:
            return
        plain = rm.convert_block(self)
        for name in ("conv1", "bn1", "act1", "conv2", "bn2", "act2", "conv3", "bn3", "downsample", "act3"):
            delattr(self, name)
        self.reparam = plain


def deploy_repvgg_block(in_chs: int, out_chs: int, stride: int, device=None, dtype=None) -> RepVggBlock:
    """A timm RepVggBlock in inference mode: what ``reparameterize()`` leaves (``reparam_conv``, 3x3).

    timm's ``inference_mode=True`` builds ``reparam_conv`` without padding, where ``reparameterize()``
    keeps the branch's padding 1; the padding is set here so both forms have the same output size.
    """
    block = RepVggBlock(in_chs, out_chs, stride=stride, inference_mode=True, device=device, dtype=dtype)
    block.reparam_conv.padding = (1, 1)
    return block


class RMNet(StemStagesMixin, ClassifierHeadMixin, nn.Module):
    """RMNet with stage depths ``depths``: training form, or with ``deploy=True`` the plain form that
    ``timm.utils.reparameterize_model`` gives (and that loads its state_dict, or with
    :func:`checkpoint_filter_fn` the one of ``replication.rm.convert``).

    Input (N, in_chans, H, W) -> logits (N, num_classes). ``stem_type`` is ``"imagenet"`` (/4) or
    ``"cifar"`` (/1); the stages reduce by 8 more. Feature taps: the stem and each stage.
    """

    def __init__(self, depths: tuple[int, ...], expand_ratio: int, group_width: int, stem_type: str = "imagenet",
                 num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, global_pool: str = "avg",
                 widths: tuple[int, ...] = STAGE_WIDTHS, deploy: bool = False, device=None, dtype=None,
                 **kwargs: Any) -> None:
        super().__init__()
        if kwargs:
            raise TypeError(f"RMNet got unexpected arguments: {', '.join(sorted(kwargs))}")
        if stem_type not in STEM_TYPES:
            raise ValueError(f"RMNet: stem_type must be one of {STEM_TYPES}, got {stem_type!r}")
        if len(depths) != len(widths):
            raise ValueError(f"RMNet: {len(depths)} stage depths for {len(widths)} stage widths")
        dd = {"device": device, "dtype": dtype}
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.stem_type = stem_type
        self.deploy = deploy
        stem_width = widths[0]
        stem_strides = (2, 2) if stem_type == "imagenet" else (1,)
        stem_block = deploy_repvgg_block if deploy else RepVggBlock
        stem, in_chs = [], in_chans
        for stride in stem_strides:
            stem.append(stem_block(in_chs, stem_width, stride=stride, **dd))
            in_chs = stem_width
        self.stem = nn.Sequential(*stem)
        reduction = 2 ** len(stem_strides) if stem_type == "imagenet" else 1
        self.feature_info = [
            dict(num_chs=stem_width, reduction=reduction, module=f"stem.{len(stem) - 1}")]
        stages = []
        for index, (depth, width) in enumerate(zip(depths, widths)):
            blocks = []
            for block_index in range(depth):
                stride = 2 if index > 0 and block_index == 0 else 1
                blocks.append(RMBlock(in_chs, width, stride, expand_ratio, group_width * 2**index, deploy=deploy,
                                      **dd))
                in_chs = width
            reduction *= 2 if index > 0 else 1
            stages.append(nn.Sequential(*blocks))
            self.feature_info.append(dict(num_chs=width, reduction=reduction, module=f"stages.{index}"))
        self.stages = nn.Sequential(*stages)
        self.num_features = in_chs
        self._init_head(num_classes, drop_rate, global_pool, **dd)
        if not deploy:
            self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        # As the official code: every block's last BN starts at zero, so each block starts as its
        # shortcut (the zero-init-residual trick of timm's ``zero_init_last``).
        for module in self.modules():
            if isinstance(module, RMBlock):
                nn.init.zeros_(module.bn3.weight)


# name -> (stage depths, expand ratio, first-stage group width); D = 2 + 3 x sum(depths)
MODEL_ARCHS = {
    "rmnet26x3_32": ((2, 2, 2, 2), 3, 32),
    "rmnet41x4_8": ((2, 3, 5, 3), 4, 8),
    "rmnet41x5_16": ((2, 3, 5, 3), 5, 16),
    "rmnet50x5_32": ((3, 4, 6, 3), 5, 32),
    "rmnet50x6_32": ((3, 4, 6, 3), 6, 32),
    "rmnet101x6_16": ((3, 4, 23, 3), 6, 16),
    "rmnet152x6_32": ((3, 8, 36, 3), 6, 32),
}


default_cfgs = generate_default_cfgs({
    **{f"{name}.untrained": default_cfg("stem.0.conv_kxk.conv") for name in MODEL_ARCHS},
    **{f"{name}_cifar.untrained": default_cfg("stem.0.conv_kxk.conv", **CIFAR_CFG) for name in MODEL_ARCHS},
})


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: RMNet) -> dict[str, torch.Tensor]:
    """A state_dict for ``model``: the model's own keys as they are, or the flat ``nn.Sequential`` that
    ``replication.rm.convert`` returns (keys ``0.weight``, ``0.bias``, ...) mapped in order onto a
    deploy-form model (same tensors, same order: stem convs, block convs, classifier)."""
    if not state_dict or not all(key.split(".", 1)[0].isdigit() for key in state_dict):
        return state_dict
    own = model.state_dict()
    if len(own) != len(state_dict):
        raise ValueError(f"a converted state_dict of {len(state_dict)} tensors for a model of {len(own)}: "
                         f"build the model with deploy=True (and the same num_classes)")
    mapped = {}
    for (key, target), (source_key, tensor) in zip(own.items(), state_dict.items()):
        if target.shape != tensor.shape or key.rsplit(".", 1)[-1] != source_key.rsplit(".", 1)[-1]:
            raise ValueError(f"converted tensor {source_key} {tuple(tensor.shape)} does not fit {key} "
                             f"{tuple(target.shape)}")
        mapped[key] = tensor
    return mapped


def _create_rmnet(variant: str, pretrained: bool = False, **kwargs: Any) -> RMNet:
    arch = variant.removesuffix("_cifar")
    depths, expand_ratio, group_width = MODEL_ARCHS[arch]
    model_args = dict(depths=depths, expand_ratio=expand_ratio, group_width=group_width,
                      stem_type="cifar" if variant.endswith("_cifar") else "imagenet")
    return build_model_with_cfg(RMNet, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn,
                                feature_cfg=dict(flatten_sequential=True), **dict(model_args, **kwargs))


@register_model
def rmnet26x3_32(pretrained: bool = False, **kwargs: Any) -> RMNet:
    """RMNet 26x3_32, ImageNet stem."""
    return _create_rmnet("rmnet26x3_32", pretrained, **kwargs)


@register_model
def rmnet26x3_32_cifar(pretrained: bool = False, **kwargs: Any) -> RMNet:
    """RMNet 26x3_32, CIFAR stem (paper Table 1 CIFAR rows, Table 4)."""
    return _create_rmnet("rmnet26x3_32_cifar", pretrained, **kwargs)


@register_model
def rmnet41x4_8(pretrained: bool = False, **kwargs: Any) -> RMNet:
    return _create_rmnet("rmnet41x4_8", pretrained, **kwargs)


@register_model
def rmnet41x4_8_cifar(pretrained: bool = False, **kwargs: Any) -> RMNet:
    return _create_rmnet("rmnet41x4_8_cifar", pretrained, **kwargs)


@register_model
def rmnet41x5_16(pretrained: bool = False, **kwargs: Any) -> RMNet:
    return _create_rmnet("rmnet41x5_16", pretrained, **kwargs)


@register_model
def rmnet41x5_16_cifar(pretrained: bool = False, **kwargs: Any) -> RMNet:
    return _create_rmnet("rmnet41x5_16_cifar", pretrained, **kwargs)


@register_model
def rmnet50x5_32(pretrained: bool = False, **kwargs: Any) -> RMNet:
    return _create_rmnet("rmnet50x5_32", pretrained, **kwargs)


@register_model
def rmnet50x5_32_cifar(pretrained: bool = False, **kwargs: Any) -> RMNet:
    return _create_rmnet("rmnet50x5_32_cifar", pretrained, **kwargs)


@register_model
def rmnet50x6_32(pretrained: bool = False, **kwargs: Any) -> RMNet:
    return _create_rmnet("rmnet50x6_32", pretrained, **kwargs)


@register_model
def rmnet50x6_32_cifar(pretrained: bool = False, **kwargs: Any) -> RMNet:
    return _create_rmnet("rmnet50x6_32_cifar", pretrained, **kwargs)


@register_model
def rmnet101x6_16(pretrained: bool = False, **kwargs: Any) -> RMNet:
    return _create_rmnet("rmnet101x6_16", pretrained, **kwargs)


@register_model
def rmnet101x6_16_cifar(pretrained: bool = False, **kwargs: Any) -> RMNet:
    return _create_rmnet("rmnet101x6_16_cifar", pretrained, **kwargs)


@register_model
def rmnet152x6_32(pretrained: bool = False, **kwargs: Any) -> RMNet:
    return _create_rmnet("rmnet152x6_32", pretrained, **kwargs)


@register_model
def rmnet152x6_32_cifar(pretrained: bool = False, **kwargs: Any) -> RMNet:
    return _create_rmnet("rmnet152x6_32_cifar", pretrained, **kwargs)


# --- RM conversion: this family's reader (the RM core knows nothing of this package) ---

@rm.register_reader(RMNet, "replication RMNet (rmnet*)")
def read_rmnet(model: RMNet, downsample: rm.blocks.DownsampleType, fuse_bn: bool) -> list[rm.Part]:
    """RepVGG stem blocks (timm's re-parameterisation), RM on every RMBlock, timm head."""
    parts = [rm.plain_part(f"stem.{index}", stem_block, functools.partial(repvgg_block_layers, stem_block,
                                                                          f"stem.{index}"))
             for index, stem_block in enumerate(model.stem.children())]
    for stage_index, stage in enumerate(model.stages.children()):
        for block_index, block in enumerate(stage.children()):
            path = f"stages.{stage_index}.{block_index}"
            if not isinstance(block, RMBlock):
                raise TypeError(f"{path}: expected an RMBlock, got {type(block).__name__}")
            if block.reparam is not None:  # already in deploy form
                parts.append(rm.plain_part(path, block, functools.partial(list, block.reparam)))
            else:
                parts.append(rm.residual_part(path, block, functools.partial(resnet_block_branch, block, path),
                                              downsample, fuse_bn))
    return parts + [rm.plain_part("fc", model.fc, lambda: timm_head(model))]
