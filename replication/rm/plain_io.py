"""Saving and loading plain networks: a layer spec plus a state_dict, loadable with weights_only=True.

A converted model is an ``nn.Sequential`` of a few layer types, so its architecture is written as a
list of plain dicts beside the weights; no pickled classes, no code needed to rebuild it. The BN-kept
form (``convert(..., fuse_bn=False)``) saves too: its :class:`ReservedBatchNorm2d` layers keep their
reserved span (a buffer), so a loaded model is ready for ``replication.train.finetune``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from .activations import ChannelwiseClamp
from .features import PlainFeatures
from .file_io import CheckpointError, load_checkpoint, save_atomic, write_atomic
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


def _clamp(num_channels: int) -> nn.Module:
    return ChannelwiseClamp(torch.zeros(num_channels), torch.zeros(num_channels))


def _reserved_bn(num_features: int, reserved: list[int], **args: Any) -> nn.Module:
    start, stop = reserved  # a span of two channel indices
    return ReservedBatchNorm2d(num_features, (int(start), int(stop)), **args)


# The layer types of this format and the fields :func:`_spec` writes for each: nothing else is built
# from a file's contents (its ``type`` names a key here, never a class to look up).
_LAYERS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "Conv2d": (nn.Conv2d, ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
                           "groups", "bias")),
    "Linear": (nn.Linear, ("in_features", "out_features", "bias")),
    "BatchNorm2d": (nn.BatchNorm2d, ("num_features", "eps", "momentum", "affine")),
    "ReservedBatchNorm2d": (_reserved_bn, ("num_features", "eps", "momentum", "affine", "reserved")),
    "SpatialSizeGuard": (SpatialSizeGuard, ("multiple", "where")),
    "PReLU": (nn.PReLU, ("num_parameters",)),
    "ChannelwiseClamp": (_clamp, ("num_channels",)),
    "MaxPool2d": (nn.MaxPool2d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode")),
    "AdaptiveAvgPool2d": (nn.AdaptiveAvgPool2d, ("output_size",)),
    "Flatten": (nn.Flatten, ("start_dim",)),
    "ReLU6": (lambda: nn.ReLU6(inplace=True), ()),
    "ReLU": (lambda: nn.ReLU(inplace=True), ()),
}


def _build(spec: Any, index: int, path: str | os.PathLike) -> nn.Module:
    where = f"{path}: layer {index}"
    if not isinstance(spec, dict) or "type" not in spec:
        raise CheckpointError(f"{where} is not a layer spec (a mapping with a 'type'): {str(spec)[:100]}")
    kind = spec["type"]
    if not isinstance(kind, str) or kind not in _LAYERS:
        raise CheckpointError(f"{where} has type {str(kind)[:100]!r}, which is not a layer of the {FORMAT} format "
                              f"(it has: {', '.join(_LAYERS)})")
    build, names = _LAYERS[kind]
    args = {k: v for k, v in spec.items() if k != "type"}
    unknown = sorted(set(args) - set(names))
    if unknown:
        raise CheckpointError(f"{where} ({kind}) has field(s) the {FORMAT} format does not define: "
                              f"{', '.join(map(str, unknown))}")
    try:
        return build(**args)
    except (TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{where} ({kind}) cannot be built from {args}: {error}") from None


def layer_spec(model: nn.Sequential) -> dict[str, Any]:
    """The architecture of a plain network as plain data: ``format``, ``layers`` (one dict per layer) and,
    for a feature extractor (:class:`PlainFeatures`), ``taps``."""
    spec: dict[str, Any] = {"format": FORMAT, "layers": [_spec(layer) for layer in model]}
    if isinstance(model, PlainFeatures):
        spec["taps"] = list(model.taps)
    return spec


def build_plain(spec: dict[str, Any], path: str | os.PathLike = "<layer spec>") -> nn.Sequential:
    """An untrained plain network from :func:`layer_spec`'s description (load its weights next); only the
    layer types of this format are built."""
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a plain network description ({FORMAT!r} format expected)")
    layers = spec.get("layers")
    if not isinstance(layers, list):
        raise CheckpointError(f"{path}: a {FORMAT} file holds a list of 'layers' and a 'state_dict'")
    built = [_build(layer, index, path) for index, layer in enumerate(layers)]
    return PlainFeatures(built, spec["taps"]) if spec.get("taps") else nn.Sequential(*built)


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_plain(model: nn.Sequential, path: str | os.PathLike) -> Path:
    """Write ``model`` (a converted plain network) atomically to ``path``: its layer spec and state_dict in
    one ``torch.save`` file (``.pt``), or, for a ``.safetensors`` path, the weights as safetensors with the
    layer spec as JSON in the file's metadata (``rmnet_layers``)."""
    if Path(path).suffix == ".safetensors":
        from safetensors.torch import save_file  # timm's dependency

        metadata = {"format": FORMAT, "rmnet_layers": json.dumps(layer_spec(model))}
        return write_atomic(path, lambda tmp: save_file(_tensors(model), str(tmp), metadata=metadata))
    return save_atomic({**layer_spec(model), "state_dict": _tensors(model)}, path)


def load_plain(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Sequential:
    """Rebuild a plain network written by :func:`save_plain` (``torch.load(weights_only=True)``, or
    safetensors for a ``.safetensors`` file). Only the layer types of this format are built."""
    if _is_safetensors(path):
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device=str(map_location)) as handle:
            metadata = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
        if metadata.get("format") != FORMAT or "rmnet_layers" not in metadata:
            raise CheckpointError(f"{path} is a safetensors file without a plain network's layer spec "
                                  f"({FORMAT!r} metadata expected)")
        spec = json.loads(metadata["rmnet_layers"])
    else:
        payload = load_checkpoint(path, map_location=map_location)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise CheckpointError(f"{path} is not a plain network saved by replication ({FORMAT!r} format expected)")
        spec, state = payload, cast(Any, payload.get("state_dict"))
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: a {FORMAT} file holds a list of 'layers' and a 'state_dict'")
    model = build_plain(spec, path)
    dtype = next((v.dtype for v in state.values() if v.is_floating_point()), None)
    if dtype is not None:  # the weights' own precision: load_state_dict would cast them to the model's
        model = model.to(dtype)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
        raise CheckpointError(f"{path}: the weights do not fit its layers ({'; '.join(lines[1:4]) or lines[0]})"
                              ) from None
    return model.eval()


def _is_safetensors(path: str | os.PathLike) -> bool:
    """A safetensors file starts with an 8-byte header length and then a JSON object."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{"
