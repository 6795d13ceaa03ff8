"""Saving and loading plain networks: a layer spec plus a state_dict, loadable with weights_only=True.

A converted model is an ``nn.Sequential`` of a few layer types, so its architecture is written as a
list of plain dicts beside the weights; no pickled classes, no code needed to rebuild it. The BN-kept
form (``convert(..., fuse_bn=False)``) saves too: its :class:`ReservedBatchNorm2d` layers keep their
reserved span (a buffer), so a loaded model is ready for ``replication.train.finetune``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .activations import ChannelwiseClamp
from .file_io import load_checkpoint, save_atomic
from .guards import SpatialSizeGuard
from .reserved import ReservedBatchNorm2d

FORMAT = "rmnet-plain-v1"


def _spec(layer: nn.Module) -> dict[str, Any]:
    if isinstance(layer, nn.Conv2d):
        return {"type": "Conv2d", "in_channels": layer.in_channels, "out_channels": layer.out_channels,
                "kernel_size": list(layer.kernel_size), "stride": list(layer.stride),
                "padding": list(layer.padding), "dilation": list(layer.dilation), "groups": layer.groups,
                "bias": layer.bias is not None}
    if isinstance(layer, nn.Linear):
        return {"type": "Linear", "in_features": layer.in_features, "out_features": layer.out_features,
                "bias": layer.bias is not None}
    if type(layer) in (nn.BatchNorm2d, ReservedBatchNorm2d):
        spec: dict[str, Any] = {"type": type(layer).__name__, "num_features": layer.num_features,
                                "eps": layer.eps, "momentum": layer.momentum, "affine": layer.affine}
        if isinstance(layer, ReservedBatchNorm2d):
            spec["reserved"] = list(layer.rm_reserved)
        return spec
    if isinstance(layer, SpatialSizeGuard):
        return {"type": "SpatialSizeGuard", "multiple": layer.multiple, "where": layer.where}
    if isinstance(layer, nn.PReLU):
        return {"type": "PReLU", "num_parameters": layer.num_parameters}
    if isinstance(layer, ChannelwiseClamp):
        return {"type": "ChannelwiseClamp", "num_channels": layer.num_channels}
    if isinstance(layer, nn.MaxPool2d):
        return {"type": "MaxPool2d", "kernel_size": layer.kernel_size, "stride": layer.stride,
                "padding": layer.padding, "dilation": layer.dilation, "ceil_mode": layer.ceil_mode}
    if isinstance(layer, nn.AdaptiveAvgPool2d):
        return {"type": "AdaptiveAvgPool2d", "output_size": layer.output_size}
    if isinstance(layer, nn.Flatten):
        return {"type": "Flatten", "start_dim": layer.start_dim}
    if isinstance(layer, nn.ReLU6):
        return {"type": "ReLU6"}
    if isinstance(layer, nn.ReLU):
        return {"type": "ReLU"}
    raise TypeError(f"layer {type(layer).__name__} is not a plain-network layer")


def _build(spec: dict[str, Any]) -> nn.Module:
    kind = spec["type"]
    args = {k: v for k, v in spec.items() if k != "type"}
    if kind == "ChannelwiseClamp":
        n = args["num_channels"]
        return ChannelwiseClamp(torch.zeros(n), torch.zeros(n))
    if kind in ("ReLU", "ReLU6"):
        return getattr(nn, kind)(inplace=True)
    if kind == "ReservedBatchNorm2d":
        return ReservedBatchNorm2d(args.pop("num_features"), tuple(args.pop("reserved")), **args)
    if kind == "SpatialSizeGuard":
        return SpatialSizeGuard(**args)
    return getattr(nn, kind)(**args)


def save_plain(model: nn.Sequential, path: str | os.PathLike) -> Path:
    """Write ``model`` (a converted plain network) atomically to ``path``."""
    payload = {"format": FORMAT, "layers": [_spec(layer) for layer in model],
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    return save_atomic(payload, path)


def load_plain(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Sequential:
    """Rebuild a plain network written by :func:`save_plain` (``torch.load(weights_only=True)``)."""
    payload = load_checkpoint(path, map_location=map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a plain network saved by replication ({FORMAT!r} format expected)")
    model = nn.Sequential(*[_build(spec) for spec in payload["layers"]])
    model.load_state_dict(payload["state_dict"])
    return model.eval()
