"""Model-level RM conversion: residual network in, equivalent plain network out."""

from __future__ import annotations

import copy
import itertools

import torch
from timm.models.efficientnet import EfficientNet, EfficientNetFeatures
from timm.models.regnet import Bottleneck as TimmRegNetBottleneck
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual, MobileNetV2
from torchvision.models.regnet import ResBottleneckBlock

from . import readers
from .blocks import DOWNSAMPLE_TYPES, DownsampleType, ResidualBranch, reserve_and_merge
from .errors import RMConversionError, UnsupportedModuleError
from .features import PlainFeatures
from .primitives import exact_batchnorm_, exact_batchnorms_, fold_batchnorm, fuse_pointwise, is_pointwise
from .registry import read_parts


def fold_batchnorms(layers: list[nn.Module]) -> list[nn.Module]:
    """Fold every BatchNorm2d into the conv right before it (torch.nn.utils.fusion)."""
    folded: list[nn.Module] = []
    for layer in layers:
        if isinstance(layer, nn.BatchNorm2d):
            if not folded or not isinstance(folded[-1], nn.Conv2d):
                raise RMConversionError(f"a BatchNorm2d({layer.num_features}) does not follow a conv")
            folded[-1] = fold_batchnorm(folded[-1], layer)
        else:
            folded.append(layer)
    return folded


def fuse_consecutive_pointwise(layers: list[nn.Module]) -> list[nn.Module]:
    """Replace every run of 1x1 convs with no activation between them by one conv (paper Eq. 4)."""
    fused: list[nn.Module] = []
    for layer in layers:
        if fused and is_pointwise(layer) and is_pointwise(previous := fused[-1]):
            fused[-1] = fuse_pointwise(previous, layer)
        else:
            fused.append(layer)
    return fused


def refuse_hooks(model: nn.Module, root: str = "") -> None:
    """Raise :class:`UnsupportedModuleError` naming the first module whose output is not what its type
    computes: one with a forward hook or forward pre-hook, or with an instance-level ``forward``. The
    readers read module types and weights, so such a module would convert silently wrong. Global
    forward hooks (``register_module_forward_hook``) change every module, and are refused too.
    Backward hooks change gradients only, and are not carried into the plain network."""
    from torch.nn.modules import module as torch_module

    for kind, registry in (("forward hook", torch_module._global_forward_hooks),
                           ("forward pre-hook", torch_module._global_forward_pre_hooks)):
        if registry:
            raise RMConversionError(f"a global {kind} is registered (torch.nn.modules.module.register_module_"
                                    f"{kind.replace(' ', '_').replace('-', '_')}): it changes every module's "
                                    "output, which has no exact plain form; remove it before converting")
    for name, module in model.named_modules():
        path = ".".join(part for part in (root, name) if part)
        if module._forward_hooks:
            reason = f"it has {len(module._forward_hooks)} forward hook(s), which may change its output"
        elif module._forward_pre_hooks:
            reason = f"it has {len(module._forward_pre_hooks)} forward pre-hook(s), which may change its input"
        elif "forward" in vars(module):
            reason = "its forward is replaced on the instance, so its type no longer says what it computes"
        else:
            continue
        raise UnsupportedModuleError(path, module, reason + "; remove it (handle.remove()) before converting")


def _finish(layers: list[nn.Module], like: nn.Module | None, *, fuse_bn: bool, fuse_1x1: bool) -> nn.Sequential:
    if fuse_bn:
        layers = fold_batchnorms(layers)
    if fuse_1x1:
        if not fuse_bn:
            raise ValueError("fuse_pointwise=True needs fuse_bn=True (Eq. 4 applies to convs with bias)")
        layers = fuse_consecutive_pointwise(layers)
    plain = nn.Sequential(*layers).eval()
    for param in plain.parameters():
        param.requires_grad_(False)
    if like is not None:
        reference = next(iter(like.parameters()), None)
        if reference is not None:
            plain = plain.to(device=reference.device, dtype=reference.dtype)
    return plain


def _device_of(model: nn.Module) -> torch.device:
    """The device of ``model``'s weights, as a context: torch's default device inside it. timm's
    ``reparameterize`` builds its convs on the default device, which fails for a model on the meta device."""
    reference = next(iter(model.parameters()), None)
    return torch.device(reference.device if reference is not None else "cpu")


def default_fuse_pointwise(model: nn.Module) -> bool:
    """Whether :func:`convert` fuses consecutive 1x1 convs (Eq. 4) by default: for the inverted-residual
    families (torchvision MobileNetV2, timm's EfficientNet class: MobileNetV2, EfficientNet-Lite, MnasNet ...)."""
    return isinstance(model, (MobileNetV2, EfficientNet, EfficientNetFeatures))


def convert(model: nn.Module, downsample: DownsampleType = "dirac", *, fuse_bn: bool = True,
            fuse_pointwise: bool | None = None) -> nn.Sequential:  # PlainFeatures is an nn.Sequential
    """Return a NEW plain network (no residual additions, BN folded) equal to ``model`` in eval mode.

    Args:
        model: a torchvision ResNet / ResNeXt / Wide ResNet / RegNetX / MobileNetV2, a timm ResNet (incl.
            ResNet-D) / RegNetX / RepVGG / EfficientNet-class model without squeeze-excitation and with ReLU
            or ReLU6 (``mobilenetv2_*``, ``efficientnet_lite*``, ``mnasnet_*``, ``spnasnet_100``,
            ``fbnetc_100``, ``mobilenetv1_*``), either as built with ``features_only=True``, or a model
            whose family registered a reader
            (:func:`replication.rm.register_reader`, as :mod:`replication.models` does). It is deep-copied
            and never modified;
            a model in training mode is converted from its eval-mode behaviour (BN running statistics).
        downsample: ``"dirac"`` (paper Fig. 2b, type 2: C -> 3C -> 2C, 81 C^2 weights in a BasicBlock)
            or ``"prelu"`` (paper Fig. 2a, type 1: C -> 4C -> 2C, 108 C^2 + 4C weights).
        fuse_bn: fold every BatchNorm into its conv (the deploy form). ``False`` keeps BN, with reserved
            channels under identity BNs (paper Eq. 2): the start point for fine-tuning.
        fuse_pointwise: fuse consecutive 1x1 convs (paper Eq. 4, MobileNetV2 -> MobileNetV1).
            Default: on for MobileNetV2 with ``fuse_bn``, off otherwise.

    Returns:
        ``nn.Sequential`` of Conv2d, ReLU / PReLU / ReLU6 / ChannelwiseClamp, MaxPool2d,
        AdaptiveAvgPool2d, Flatten and Linear in eval mode (plus ``ReservedBatchNorm2d`` / BatchNorm2d
        with ``fuse_bn=False``, and a :class:`SpatialSizeGuard` before each average-pool-shortcut block),
        on the model's device and dtype, with ``requires_grad`` off (a deploy model;
        ``replication.train.finetune`` turns it back on). For an input of shape (N, C, H, W) its output
        equals ``model.eval()(x)`` up to floating-point rounding; a guard refuses, with
        :class:`InputSizeError`, a size at which an average-pool shortcut would not be exact.
        A timm ``features_only`` model gives a :class:`PlainFeatures` (an ``nn.Sequential`` whose forward
        returns the list of tapped activations, as the model's does).

    Raises:
        UnsupportedModuleError: a module has no exact conversion (or carries a forward hook, a forward
            pre-hook or an instance-level ``forward``); the message names its path and type.
    """
    if downsample not in DOWNSAMPLE_TYPES:
        raise ValueError(f"downsample must be one of {DOWNSAMPLE_TYPES}, got {downsample!r}")
    refuse_hooks(model)
    working = exact_batchnorms_(copy.deepcopy(model).eval())
    with _device_of(working):  # modules a reader (or timm's reparameterize) creates land beside the weights
        parts = read_parts(working, downsample, fuse_bn)
        stages: list[list[nn.Module]] = [[]]
        for part in parts:
            stages[-1].extend(part.build().layers)
            if part.tap:
                stages.append([])
    if fuse_pointwise is None:  # Eq. 4 needs the BN folded: with BN kept there is nothing to fuse
        fuse_pointwise = fuse_bn and default_fuse_pointwise(model)
    if not any(part.tap for part in parts):
        return _finish(stages[0], model, fuse_bn=fuse_bn, fuse_1x1=fuse_pointwise)
    # a feature extractor: each stage ends at a tap and is finished on its own (no fusion across a tap);
    # layers after the last tap compute nothing that is returned
    finished = [list(_finish(stage, model, fuse_bn=fuse_bn, fuse_1x1=fuse_pointwise)) for stage in stages[:-1]]
    taps = list(itertools.accumulate(len(stage) for stage in finished))
    features = PlainFeatures([layer for stage in finished for layer in stage], [t - 1 for t in taps]).eval()
    for param in features.parameters():
        param.requires_grad_(False)
    return features


def convert_branch(branch: ResidualBranch, downsample: DownsampleType = "dirac", *, fuse_bn: bool = True
                   ) -> nn.Sequential:
    """One residual block (as a :class:`ResidualBranch`) to its plain equivalent."""
    branch = copy.deepcopy(branch)
    for index, unit in enumerate(branch.units):
        if unit.bn is not None:
            exact_batchnorm_(unit.bn, f"{branch.path}.bn{index + 1}")
    if branch.shortcut is not None and branch.shortcut.bn is not None:
        exact_batchnorm_(branch.shortcut.bn, f"{branch.path}.downsample.1")
    return _finish(reserve_and_merge(branch, downsample, fuse_bn=fuse_bn), None, fuse_bn=fuse_bn, fuse_1x1=False)


def convert_block(block: nn.Module, downsample: DownsampleType = "dirac", *, fuse_bn: bool = True,
                  path: str = "block") -> nn.Sequential:
    """A single residual block: a torchvision / timm BasicBlock or Bottleneck (incl. average-pool
    shortcuts), a torchvision ResBottleneckBlock or timm RegNet Bottleneck, or an InvertedResidual.

    ResNet and RegNet blocks assume a non-negative input (they follow a ReLU in these networks), as
    the paper does; InvertedResidual blocks accept any input.
    """
    refuse_hooks(block, path)
    working = exact_batchnorms_(copy.deepcopy(block).eval(), path)
    with _device_of(working):
        if isinstance(working, InvertedResidual):
            layers = readers.torchvision.inverted_residual_layers(working, path, downsample, fuse_bn)
        elif isinstance(working, ResBottleneckBlock):
            layers = reserve_and_merge(readers.torchvision.regnet_block_branch(working, path, True), downsample,
                                       fuse_bn=fuse_bn)
        elif type(working) is TimmRegNetBottleneck:
            layers = reserve_and_merge(readers.timm.regnet_block_branch(working, path, True), downsample,
                                       fuse_bn=fuse_bn)
        else:
            layers = reserve_and_merge(readers.common.resnet_block_branch(working, path), downsample,
                                       fuse_bn=fuse_bn)
    return _finish(layers, block, fuse_bn=fuse_bn, fuse_1x1=False)
