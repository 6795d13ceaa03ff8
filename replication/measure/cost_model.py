"""A per-op cost model of a forward pass: FLOPs and bytes moved, and a roofline time on a GPU spec.

:class:`CostMode` (a ``TorchDispatchMode``) records every ATen op of a forward pass with

- its FLOPs, from ``torch.utils.flop_counter``'s own formula registry (so the total equals
  ``FlopCounterMode``'s: convolutions and matrix products; elementwise ops, BN and pooling count 0),
- the bytes it moves: activations read, weights read (parameters, buffers and views of them) and
  outputs written, each tensor counted once per op by the elements it spans (a broadcast dimension,
  stride 0, is read once),
- whether it launches a kernel: views, aliases and ``empty`` allocations move nothing and launch nothing.

Ops that ``FlopCounterMode`` decomposes (CompositeImplicitAutograd ops without a formula, e.g.
``aten.linear``) are decomposed here too, so both modes see the same ops.

:func:`predict` turns the ops into a time on a device of ``devices.yaml``: per op
``max(FLOPs / peak, bytes / bandwidth) + launch_s`` (a roofline per kernel, plus one fixed launch cost
per kernel), summed, as eager PyTorch runs them one after another. What it leaves out, on purpose:
achieved vs peak efficiency (cuDNN's algorithms, Winograd's fewer multiplies for 3x3 convs, occupancy),
caches (every op reads its inputs from and writes its outputs to DRAM), and the host: at batch 128
the CPU issues kernels faster than the GPU runs them. Its predictions are labelled ``predicted`` and
never go into a measured column.

Tracing runs on the ``meta`` device: shapes and dtypes only, no arithmetic, so a batch-128 ImageNet
model costs milliseconds and no memory. The caller's model is never modified.

    >>> seconds = predict_time(model, (128, 3, 224, 224), device="v100", dtype="fp32")
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import pandas as pd
import torch
import yaml
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

aten = torch.ops.aten

# The math modes the cost model predicts (tf32: float32 tensors on TensorFloat-32 units).
PREDICT_DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DTYPE_ALIASES = {"float32": "fp32", "float": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16",
                 **{key: key for key in PREDICT_DTYPES}}

# Ops that only ask about a tensor (FlopCounterMode skips the same ones).
_METADATA_OPS = {aten.sym_is_contiguous.default, aten.is_contiguous.default, aten.is_contiguous.memory_format,
                 aten.is_strides_like_format.default, aten.is_non_overlapping_and_dense.default,
                 aten.size.default, aten.sym_size.default, aten.stride.default, aten.sym_stride.default,
                 aten.storage_offset.default, aten.sym_storage_offset.default, aten.numel.default,
                 aten.sym_numel.default, aten.dim.default, torch.ops.prim.layout.default,
                 torch.ops.prim.device.default}
# Ops that return a tensor without launching a kernel or moving data, beyond the schema's view ops.
_NO_KERNEL = {aten._unsafe_view, aten.detach, aten.alias, aten.lift_fresh, aten._reshape_alias, aten.empty,
              aten.empty_like, aten.empty_strided, aten.new_empty, aten.new_empty_strided}

_CATEGORIES = {
    "conv": (aten.convolution, aten._convolution, aten.cudnn_convolution, aten.convolution_overrideable,
             aten._slow_conv2d_forward, aten.mkldnn_convolution),
    "matmul": (aten.mm, aten.addmm, aten.bmm, aten.baddbmm),
    "batch_norm": (aten.native_batch_norm, aten._native_batch_norm_legit, aten._native_batch_norm_legit_no_training,
                   aten.batch_norm, aten._batch_norm_impl_index, aten.cudnn_batch_norm,
                   aten.miopen_batch_norm),
    "add": (aten.add, aten.add_),
    "activation": (aten.relu, aten.relu_, aten.hardtanh, aten.hardtanh_, aten.clamp, aten.clamp_,
                   aten.clamp_min, aten.clamp_min_, aten.clamp_max, aten.clamp_max_, aten._prelu_kernel,
                   aten.prelu, aten.threshold, aten.threshold_, aten.silu, aten.silu_, aten.gelu, aten.sigmoid,
                   aten.where, aten.minimum, aten.maximum),
    "pool": (aten.max_pool2d_with_indices, aten.max_pool2d, aten.avg_pool2d, aten._adaptive_avg_pool2d,
             aten.adaptive_avg_pool2d, aten.mean, aten.amax),
    "copy": (aten.clone, aten.copy_, aten._to_copy, aten.cat, aten.contiguous),
}
CATEGORY_OF = {packet: name for name, packets in _CATEGORIES.items() for packet in packets}
CATEGORIES = (*_CATEGORIES, "other")


def _spanned_bytes(tensor: torch.Tensor) -> int:
    """Bytes of the distinct elements a tensor spans: a broadcast (stride 0) dimension counts once."""
    if tensor.numel() == 0:
        return 0
    elements = 1
    for size, stride in zip(tensor.shape, tensor.stride(), strict=True):
        if stride != 0:
            elements *= size
    return elements * tensor.element_size()


def _tensors(values: Iterable[Any]) -> list[torch.Tensor]:
    unique: dict[int, torch.Tensor] = {}
    for value in tree_flatten(list(values))[0]:
        if isinstance(value, torch.Tensor):
            unique.setdefault(id(value), value)
    return list(unique.values())


@dataclass(frozen=True)
class OpCost:
    """One ATen op of the forward pass."""

    index: int
    op: str               # e.g. "aten.convolution.default"
    module: str           # qualified name of the innermost module running it ("" for the model itself)
    category: str         # conv, matmul, batch_norm, add, activation, pool, copy, other
    flops: int
    bytes_read: int       # activations read (inputs that are not weights)
    bytes_weights: int    # parameters and buffers read (and views of them)
    bytes_written: int    # outputs written
    kernel: bool          # False for views / aliases / allocations: no launch, no bytes
    dense_3x3: bool = False  # a dense (groups=1) 3x3 stride-1 convolution: what Winograd algorithms speed up

    @property
    def bytes(self) -> int:
        return self.bytes_read + self.bytes_weights + self.bytes_written


class CostMode(TorchDispatchMode):
    """Records an :class:`OpCost` for every ATen op run under it.

    ``weights``: the tensors that count as weights (a model's parameters and buffers); views of them
    made during the pass count as weights too. ``module_stack``: names of the modules being run,
    innermost last (kept by :func:`trace`'s hooks), for attributing each op.
    """

    def __init__(self, weights: Iterable[torch.Tensor] = ()) -> None:
        super().__init__()
        self.ops: list[OpCost] = []
        self.module_stack: list[str] = []
        self._weights = {id(t): t for t in weights}  # values keep the ids alive

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _METADATA_OPS:
            return func(*args, **kwargs)
        if func._overloadpacket not in flop_registry:  # decompose as FlopCounterMode does
            with self:
                result = func.decompose(*args, **kwargs)
            if result is not NotImplemented:
                return result
        out = func(*args, **kwargs)
        self._record(func, args, kwargs, out)
        return out

    def _record(self, func, args, kwargs, out) -> None:
        packet = func._overloadpacket
        inputs = _tensors([args, kwargs])
        outputs = _tensors([out])
        if CATEGORY_OF.get(packet) == "batch_norm" and isinstance(out, (tuple, list)):
            # eval-mode BN also returns (saved mean, saved inverse std): the meta and CPU kernels fill
            # them, cuDNN's inference kernel does not; only the normalised tensor is written
            outputs = outputs[:1]
        from_weights = any(id(t) in self._weights for t in inputs)
        kernel = not (func.is_view or packet in _NO_KERNEL)
        if not kernel and from_weights:  # a view of a weight is still a weight
            self._weights.update({id(t): t for t in outputs})
        flops = int(flop_registry[packet](*args, **kwargs, out_val=out)) if packet in flop_registry else 0
        read = weights = written = 0
        if kernel:
            for tensor in inputs:
                if id(tensor) in self._weights:
                    weights += _spanned_bytes(tensor)
                else:
                    read += _spanned_bytes(tensor)
            written = sum(_spanned_bytes(t) for t in outputs)
        self.ops.append(OpCost(len(self.ops), str(func), self.module_stack[-1] if self.module_stack else "",
                               CATEGORY_OF.get(packet, "other"), flops, read, weights, written, kernel,
                               _dense_3x3(packet, args)))


def _dense_3x3(packet, args) -> bool:
    """aten.convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)."""
    if CATEGORY_OF.get(packet) != "conv" or len(args) < 9:
        return False
    weight, stride, dilation, transposed, groups = args[1], args[3], args[5], args[6], args[8]
    return (tuple(weight.shape[2:]) == (3, 3) and all(v == 1 for v in stride) and all(v == 1 for v in dilation)
            and not transposed and groups == 1)


@dataclass
class ModelCost:
    """The ops of one forward pass of a batch of ``input_shape``."""

    ops: list[OpCost]
    input_shape: tuple[int, ...]
    dtype: str
    parameter_bytes: int = 0

    @property
    def batch_size(self) -> int:
        return self.input_shape[0]

    @property
    def kernels(self) -> list[OpCost]:
        return [op for op in self.ops if op.kernel]

    @property
    def flops(self) -> int:
        return sum(op.flops for op in self.ops)

    @property
    def bytes(self) -> int:
        return sum(op.bytes for op in self.ops)

    @property
    def weight_bytes(self) -> int:
        return sum(op.bytes_weights for op in self.ops)

    def frame(self) -> pd.DataFrame:
        """One row per op (views included, ``kernel`` False)."""
        rows = [{**op.__dict__, "bytes": op.bytes} for op in self.ops]
        return pd.DataFrame(rows)

    def by_category(self) -> pd.DataFrame:
        """FLOPs, bytes and kernels summed per op category."""
        frame = self.frame()
        frame = frame[frame["kernel"]]
        return frame.groupby("category")[["flops", "bytes", "bytes_read", "bytes_weights", "bytes_written"]].sum()


def _meta_copy(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers live on ``meta`` (no data is copied)."""
    memo: dict[int, Any] = {}
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) in memo:
            continue
        meta = torch.empty_like(tensor, device="meta")
        if tensor.is_floating_point():
            meta = meta.to(dtype)
        memo[id(tensor)] = nn.Parameter(meta, requires_grad=False) if isinstance(tensor, nn.Parameter) else meta
    return copy.deepcopy(model, memo).eval()


def trace(model: nn.Module, input_shape: tuple[int, ...], *, dtype: str = "fp32") -> ModelCost:
    """The :class:`ModelCost` of ``model``'s eval-mode forward pass on a batch of ``input_shape``
    (N, C, H, W), in ``dtype`` (fp32 / tf32 / fp16 / bf16; the model and input are cast, as a model
    deployed with ``.half()``). Runs on the meta device; the caller's model is not modified."""
    key = DTYPE_ALIASES.get(dtype)
    if key is None:
        raise ValueError(f"dtype must be one of {', '.join(PREDICT_DTYPES)}, got {dtype!r}")
    if len(input_shape) < 2 or any(int(d) < 1 for d in input_shape):
        raise ValueError(f"input_shape must be (N, C, ...) with positive sizes, got {tuple(input_shape)}")
    torch_dtype = PREDICT_DTYPES[key]
    meta = _meta_copy(model, torch_dtype)
    mode = CostMode([*meta.parameters(), *meta.buffers()])
    handles = []

    def enter(name: str):
        def hook(module: nn.Module, args: Any) -> None:
            mode.module_stack.append(name)
        return hook

    def leave(module: nn.Module, args: Any, output: Any) -> None:
        mode.module_stack.pop()

    for name, module in meta.named_modules():
        handles += [module.register_forward_pre_hook(enter(name)), module.register_forward_hook(leave)]
    x = torch.empty(tuple(int(d) for d in input_shape), device="meta", dtype=torch_dtype)
    try:
        with torch.no_grad(), mode:
            meta(x)
    finally:
        for handle in handles:
            handle.remove()
    parameter_bytes = sum(_spanned_bytes(p) for p in meta.parameters())
    return ModelCost(mode.ops, tuple(int(d) for d in input_shape), key, parameter_bytes)


# --------------------------------------------------------------------------- devices and prediction


@dataclass(frozen=True)
class DeviceSpec:
    key: str
    name: str
    peak_flops: dict[str, float | None]
    bandwidth: float          # bytes/s
    launch_s: float
    source: str
    match: tuple[str, ...] = ()

    def peak(self, dtype: str) -> float:
        key = DTYPE_ALIASES.get(dtype, dtype)
        value = self.peak_flops.get(key)
        if value is None:
            raise ValueError(f"{self.name} has no {dtype} peak in devices.yaml "
                             f"(has: {', '.join(k for k, v in self.peak_flops.items() if v)})")
        return float(value)


@lru_cache(maxsize=1)
def load_devices() -> dict[str, DeviceSpec]:
    """The device specs of ``replication/measure/devices.yaml`` (package data), by key."""
    text = resources.files("replication.measure").joinpath("devices.yaml").read_text()
    specs = {}
    for key, entry in yaml.safe_load(text).items():
        peaks = {k: (float(v) if v is not None else None) for k, v in entry["peak_flops"].items()}
        specs[key] = DeviceSpec(key, entry["name"], peaks, float(entry["bandwidth"]), float(entry["launch_s"]),
                                " ".join(entry["source"].split()), tuple(entry.get("match", ())))
    return specs


def device_spec(device: str) -> DeviceSpec:
    """A spec by key (``"v100"``) or by a device name containing one of its ``match`` strings
    (``"Tesla V100-SXM2-16GB"``); ValueError naming the known devices otherwise."""
    specs = load_devices()
    if device.lower() in specs:
        return specs[device.lower()]
    for spec in specs.values():
        if any(text.lower() in device.lower() for text in spec.match):
            return spec
    raise ValueError(f"unknown device {device!r}: devices.yaml has {', '.join(specs)}")


@dataclass
class Prediction:
    """Predicted time of one forward pass of a batch, and where it goes."""

    device: str
    dtype: str
    batch_size: int
    seconds: float              # compute_s + memory_s + launch_s
    compute_s: float            # ops whose FLOPs / peak exceeds bytes / bandwidth (compute-bound)
    memory_s: float             # the others (memory-bound)
    launch_s: float             # kernels x the device's launch constant
    kernels: int
    flops: int
    bytes: int
    by_category: dict[str, float] = field(default_factory=dict)  # seconds per op category, launches included

    @property
    def images_per_sec(self) -> float:
        return self.batch_size / self.seconds

    def as_row(self, prefix: str = "predicted_") -> dict[str, object]:
        row: dict[str, object] = {f"{prefix}seconds": self.seconds, f"{prefix}images_per_sec": self.images_per_sec,
               f"{prefix}compute_s": self.compute_s, f"{prefix}memory_s": self.memory_s,
               f"{prefix}launch_s": self.launch_s}
        row.update({f"{prefix}{category}_s": self.by_category.get(category, 0.0) for category in CATEGORIES})
        return row


WINOGRAD_F2X2_3X3 = 2.25  # multiplies per output of a direct 3x3 conv (9) over Winograd F(2x2, 3x3)'s (16 / 4)


def predict(cost: ModelCost, device: str | DeviceSpec = "v100", dtype: str | None = None, *,
            winograd: float | None = None) -> Prediction:
    """Roofline time of ``cost`` on ``device``: per kernel max(FLOPs / peak, bytes / bandwidth) + launch_s.
    ``dtype`` picks the peak (default: the dtype the cost was traced in; ``tf32`` applies to fp32 traces).
    ``winograd``: divide the FLOPs of dense 3x3 stride-1 convolutions by this factor (e.g.
    :data:`WINOGRAD_F2X2_3X3`, Lavin and Gray 2016), as cuDNN's Winograd algorithms do; None: direct
    convolution, the model's default."""
    spec = device if isinstance(device, DeviceSpec) else device_spec(device)
    dtype = DTYPE_ALIASES.get(dtype or cost.dtype, dtype or cost.dtype)
    if PREDICT_DTYPES.get(dtype) != PREDICT_DTYPES[cost.dtype]:
        raise ValueError(f"a {cost.dtype} trace cannot be predicted as {dtype}: trace the model in {dtype}")
    peak = spec.peak(dtype)
    compute = memory = 0.0
    by_category = dict.fromkeys(CATEGORIES, 0.0)
    kernels = cost.kernels
    for op in kernels:
        flops = op.flops / winograd if winograd and op.dense_3x3 else op.flops
        compute_time, memory_time = flops / peak, op.bytes / spec.bandwidth
        if compute_time > memory_time:
            compute += compute_time
        else:
            memory += memory_time
        by_category[op.category] += max(compute_time, memory_time) + spec.launch_s
    launch = len(kernels) * spec.launch_s
    return Prediction(spec.key, dtype, cost.batch_size, compute + memory + launch, compute, memory, launch,
                      len(kernels), cost.flops, cost.bytes, by_category)


def predict_time(model: nn.Module, input_shape: tuple[int, ...], device: str = "v100", dtype: str = "fp32") -> float:
    """Predicted seconds for one eval-mode forward pass of ``model`` on a batch of ``input_shape``
    (N, C, H, W) on ``device`` (a key or name from devices.yaml) in ``dtype`` (fp32, tf32, fp16, bf16)."""
    trace_dtype = "fp32" if DTYPE_ALIASES.get(dtype) == "tf32" else dtype
    return predict(trace(model, input_shape, dtype=trace_dtype), device, dtype).seconds
