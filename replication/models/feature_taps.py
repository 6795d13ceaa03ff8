"""timm's feature interface for the project's own model classes: feature taps (``forward_intermediates``,
``feature_info``) and pruning to a tap (``prune_intermediate_layers``). The classifier head is in
:mod:`.classifier_head`.

No ``from __future__ import annotations`` here or in the model files: TorchScript reads the
annotations of scripted methods and class attributes, and cannot read them as strings.
"""

from typing import TYPE_CHECKING, Any

import torch
from timm.models._features import feature_take_indices
from torch import nn

__all__ = ["FeatureTapsMixin", "FlatFeaturesMixin", "StemStagesMixin", "module_stride", "stride_taps"]


class FeatureTapsMixin:
    """timm's ``forward_intermediates`` / ``prune_intermediate_layers`` over a chain of segments.

    The class lists its ``feature_info`` (one entry per tap) and implements :meth:`_segments`: the
    modules that, applied in order, give ``forward_features``; tap ``i`` is the output of segment ``i``.
    Pruning to tap ``i`` calls :meth:`_prune_after` (which drops every segment after it).
    """

    if TYPE_CHECKING:  # provided by the model class; TorchScript never reads these
        feature_info: list[dict[str, Any]]
        num_features: int
        head_hidden_size: int

        def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None: ...

    @torch.jit.ignore
    def _segments(self) -> list[nn.Module]:
        raise NotImplementedError

    @torch.jit.ignore
    def _prune_after(self, index: int) -> None:
        raise NotImplementedError

    @torch.jit.ignore
    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: int | list[int] | None = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = "NCHW",
            intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Features and the feature maps at ``indices`` (all taps if None, the last n if an int)."""
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        segments = self._segments()
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        intermediates = []
        for index, segment in enumerate(segments):
            if stop_early and index > max_index:
                break
            x = segment(x)
            if index in take_indices:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    @torch.jit.ignore
    def prune_intermediate_layers(self, indices: int | list[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drop the layers after the last tap in ``indices`` (and the head); the kept tap indices."""
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        prune_end = max_index < len(self.feature_info) - 1
        if prune_end:
            self._prune_after(max_index)
            # the features now end at that tap: the head, sized for the last features, goes too
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        if prune_head or prune_end:
            self.reset_classifier(0, "")
        return take_indices



class StemStagesMixin(FeatureTapsMixin):
    """``stem`` then ``stages`` (a Sequential of stages): taps after the stem and after every stage."""

    if TYPE_CHECKING:  # set by the model class
        stem: nn.Module
        stages: nn.Sequential

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(stem=r"^stem", blocks=r"^stages\.(\d+)" if coarse else r"^stages\.(\d+)\.(\d+)")

    @torch.jit.ignore
    def _segments(self) -> list[nn.Module]:
        return [self.stem, *self.stages]

    @torch.jit.ignore
    def _prune_after(self, index: int) -> None:
        self.stages = self.stages[:index]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


class FlatFeaturesMixin(FeatureTapsMixin):
    """One flat ``features`` chain, tapped at the layers ``feature_info[i]["index"]`` (see :func:`stride_taps`)."""

    if TYPE_CHECKING:  # set by the model class
        features: nn.Sequential

    @torch.jit.ignore
    def _segments(self) -> list[nn.Module]:
        ends = [info["index"] for info in self.feature_info]
        return [self.features[start + 1:end + 1] for start, end in zip([-1] + ends[:-1], ends)]

    @torch.jit.ignore
    def _prune_after(self, index: int) -> None:
        self.features = self.features[:self.feature_info[index]["index"] + 1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def module_stride(module: nn.Module) -> int:
    """The spatial stride of ``module``: the product of its convs' and pools' strides (rows)."""
    stride = 1
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            step = layer.stride if isinstance(layer.stride, int) else layer.stride[0]
            stride *= step
    return stride


def _out_channels(module: nn.Module, channels: int) -> int:
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            channels = layer.out_channels
        elif isinstance(layer, nn.BatchNorm2d):
            channels = layer.num_features
        elif hasattr(layer, "delta") and isinstance(weight := getattr(layer, "weight", None), torch.Tensor):
            channels = int(weight.shape[0])  # DiracConv2d
    return channels


def stride_taps(layers: nn.Sequential, prefix: str, first: tuple[int, ...] = ()) -> list[dict]:
    """``feature_info`` of a flat chain of layers: the last layer at each resolution (before each
    strided layer, and the final layer), plus the layers at indices ``first``."""
    strides = [module_stride(layer) for layer in layers]
    taps = set(first) | {index for index in range(len(layers) - 1) if strides[index + 1] > 1} | {len(layers) - 1}
    info, reduction, channels = [], 1, 0
    for index, layer in enumerate(layers):
        reduction *= strides[index]
        channels = _out_channels(layer, channels)
        if index in taps:
            info.append(dict(num_chs=channels, reduction=reduction, module=f"{prefix}.{index}", index=index))
    return info
