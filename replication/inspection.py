"""What RM would do to a model, block by block, before converting it (``python -m replication inspect``).

For every part of a model (stem, each residual block, head) the report says whether RM converts it
exactly or why not (the module path and type that stop it), its parameters and MACs before and after
conversion, and the reserved channels RM adds. It needs no weights: the model is built on PyTorch's
``meta`` device (shapes only, no memory, no arithmetic), converted there, and counted with
``torch.utils.flop_counter``; a model whose constructor cannot run on ``meta`` is built on the CPU.

Counting conventions are those of :mod:`replication.measure.counting`: MACs = flop_counter's FLOPs / 2
(convolutions and matrix products only), parameters = every parameter. "After" counts the deploy form
of :func:`replication.rm.convert` (BN folded into conv biases); per part before Eq. 4's fusion of
consecutive 1x1 convs across blocks, which the totals include where ``convert`` applies it (MobileNetV2).

The GPU cost model (``replication.measure.cost_model``) gives the predicted speed change:
:func:`inspect_model` takes a ``predict`` callable (plain network, residual network, input shape ->
speed ratio); the CLI builds it from ``--device``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from . import rm, zoo
from .rm.convert import default_fuse_pointwise

STATUS_EXACT = "exact"
STATUS_REFUSED = "refused"
STATUS_SIZE = "refused at this size"
FORMATS = ("table", "csv", "json")


@dataclass
class PartReport:
    """One part of the model. ``*_after`` are None when the part is refused."""

    path: str
    module_type: str
    residual: bool
    status: str
    reason: str = ""
    failing_path: str = ""
    failing_type: str = ""
    params_before: int = 0
    params_after: int | None = None
    macs_before: int | None = None
    macs_after: int | None = None
    reserved: int = 0


@dataclass
class ModelReport:
    """The whole model: totals, and one :class:`PartReport` per part (none when no reader fits)."""

    model: str
    model_type: str
    input_size: int
    downsample: str
    status: str
    reason: str = ""
    failing_path: str = ""
    failing_type: str = ""
    residual_blocks: int = 0
    blocks_converted: int = 0
    params_before: int = 0
    params_after: int | None = None
    macs_before: int | None = None
    macs_after: int | None = None
    reserved: int = 0
    predicted_speedup: float | None = None
    device: str = "meta"
    note: str = ""
    parts: list[PartReport] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_input_size(text: str | int) -> int:
    """A square input side from the command line: a positive integer, else ValueError naming it."""
    try:
        size = int(str(text).strip())
    except ValueError:
        raise ValueError(f"--input-size must be a positive integer, got {text!r}") from None
    if size < 1:
        raise ValueError(f"--input-size must be a positive integer, got {size}")
    return size


def build_model(name: str, cpu_fallback: bool = True) -> tuple[nn.Module, str]:
    """``name`` built without weights on the meta device, or on the CPU if its constructor needs real
    tensors and ``cpu_fallback`` (else the constructor's error propagates)."""
    zoo.check_name(name)  # UnknownModelError with close matches, before any construction
    try:
        with torch.device("meta"):
            return zoo.create(name), "meta"
    except Exception:  # a constructor that computes with tensors: build it for real
        if not cpu_fallback:
            raise
        return zoo.create(name), "cpu"


def default_input_size(model: nn.Module) -> int:
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    size = cfg.get("input_size") if isinstance(cfg, dict) else None
    return int(size[-1]) if size else 224


def _macs(counter: FlopCounterMode) -> int:
    return counter.get_total_flops() // 2


def _params(modules: list[nn.Module] | nn.Module) -> int:
    modules = modules if isinstance(modules, list) else [modules]
    seen: set[int] = set()
    total = 0
    for module in modules:
        for param in module.parameters():
            if id(param) not in seen:
                seen.add(id(param))
                total += param.numel()
    return total


class _Trace:
    """One forward pass of the source model: MACs per module and the input shape each module saw."""

    def __init__(self, model: nn.Module, x: torch.Tensor) -> None:
        self.shapes: dict[int, torch.Size] = {}
        self.total: int | None = None
        self.flops: dict[str, int] = {}
        self.counting_error = ""
        root = type(model).__name__
        self.names = {id(m): (f"{root}.{name}" if name else root) for name, m in model.named_modules()}
        hooks = [m.register_forward_pre_hook(self._record) for m in model.modules()]
        try:
            try:
                with FlopCounterMode(display=False) as counter, torch.no_grad():
                    model(x)
                self.total = _macs(counter)
                self.flops = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
            except Exception as error:  # noqa: BLE001  (the counter's module tracker fails on some models)
                self.counting_error = f"{type(error).__name__}: {error}"
                self.shapes.clear()
                with torch.no_grad():
                    model(x)  # a failure here is the model's own: the caller reports the size
        finally:
            for hook in hooks:
                hook.remove()

    def _record(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        if id(module) not in self.shapes and inputs and isinstance(inputs[0], torch.Tensor):
            self.shapes[id(module)] = inputs[0].shape

    def macs(self, module: nn.Module | None) -> int | None:
        """MACs run inside ``module`` (a module of the model, or a container over some of them)."""
        if module is None or self.total is None:
            return None
        if id(module) in self.names:
            return self.flops.get(self.names[id(module)], 0) // 2
        children = list(module.children())
        if not children:
            return None
        parts = [self.macs(child) for child in children]
        known = [p for p in parts if p is not None]
        return None if len(known) < len(parts) else sum(known)

    def input_shape(self, module: nn.Module | None) -> torch.Size | None:
        if module is None:
            return None
        for sub in module.modules():
            if id(sub) in self.shapes:
                return self.shapes[id(sub)]
        return None


def _display_path(part: rm.Part) -> str:
    """The part's module path; a stretch of root-level modules (a ResNet stem) by its members' names."""
    if part.path:
        return part.path
    if isinstance(part.module, nn.Sequential):
        return "+".join(name for name, _ in part.module.named_children())
    return "<root>"


def _run_counted(layers: list[nn.Module], x: torch.Tensor) -> tuple[torch.Tensor, int]:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = nn.Sequential(*layers)(x)
    return out, _macs(counter)


def inspect_model(model: nn.Module | str, input_size: int | None = None, downsample: str = "dirac", *,
                  name: str | None = None, cpu_fallback: bool = True,
                  predict: Callable[[nn.Module, nn.Module, tuple[int, ...]], float] | None = None) -> ModelReport:
    """The per-part RM report of ``model`` (a name for :func:`replication.zoo.create`, or a module).

    A module is deep-copied (conversion rebuilds parts of it in place) and never modified.
    ``input_size``: square side (default: the model's timm config, else 224). Raises ValueError if the
    model does not run at that size. ``predict``, when given, fills ``predicted_speedup`` from the
    converted and the source network.
    """
    if downsample not in rm.DOWNSAMPLE_TYPES:
        raise ValueError(f"downsample must be one of {rm.DOWNSAMPLE_TYPES}, got {downsample!r}")
    if isinstance(model, str):
        name = name or model
        model, device = build_model(model, cpu_fallback)
    else:
        model = copy.deepcopy(model)
        device = str(next(iter(model.parameters()), torch.empty(0)).device)
    model.eval()
    for param in model.parameters():  # a deploy-time view: no autograd (flop_counter's tracker needs this)
        param.requires_grad_(False)
    size = parse_input_size(input_size) if input_size is not None else default_input_size(model)
    reference = next(iter(model.parameters()), None)
    dtype = reference.dtype if reference is not None else torch.float32
    in_chans = getattr(model, "in_chans", 3)
    x = torch.zeros(1, in_chans, size, size, dtype=dtype, device=device)
    try:
        trace = _Trace(model, x)
    except Exception as error:  # noqa: BLE001  (any failure of the model's own forward is a bad size)
        raise ValueError(f"{name or type(model).__name__} does not run at input size {size}: "
                         f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}") from None
    report = ModelReport(model=name or type(model).__name__, model_type=type(model).__name__, input_size=size,
                         downsample=downsample, status=STATUS_EXACT, params_before=_params(model),
                         macs_before=trace.total, device=device,
                         note=f"MACs not counted: {trace.counting_error}" if trace.counting_error else "")
    try:
        parts = rm.read_parts(model, downsample, True)  # type: ignore[arg-type]
    except rm.UnsupportedModuleError as error:
        report.status, report.reason = STATUS_REFUSED, str(error)
        report.failing_path, report.failing_type = error.path, error.module_type
        return report
    current: torch.Tensor | None = x
    deploy_layers: list[nn.Module] = []
    for part in parts:
        entry = PartReport(path=_display_path(part), module_type=type(part.module).__name__, residual=part.residual,
                           status=STATUS_EXACT, params_before=_params(part.module) if part.module is not None else 0,
                           macs_before=trace.macs(part.module))
        report.parts.append(entry)
        if current is None:  # an earlier part failed: start from the shape this part saw in the source model
            shape = trace.input_shape(part.module)
            current = None if shape is None else torch.zeros(shape, dtype=dtype, device=device)
        try:
            with torch.device(device):  # modules a reader creates (timm's reparameterize) join the model's device
                built = part.build()
            layers = rm.fold_batchnorms(built.layers)
        except rm.UnsupportedModuleError as error:
            entry.status, entry.reason = STATUS_REFUSED, str(error)
            entry.failing_path, entry.failing_type = error.path, error.module_type
            current = None
            continue
        entry.params_after, entry.reserved = _params(layers), built.reserved
        deploy_layers += layers
        if current is not None:
            try:
                current, entry.macs_after = _run_counted(layers, current)
            except rm.InputSizeError as error:
                entry.status, entry.reason = STATUS_SIZE, str(error)
                entry.failing_path, entry.failing_type = part.path, "SpatialSizeGuard"
                current = None
    _summarise(report)
    if report.status == STATUS_EXACT and default_fuse_pointwise(model):
        fused = rm.fuse_consecutive_pointwise(deploy_layers)  # Eq. 4 across blocks, as convert does
        report.params_after = _params(fused)
        report.macs_after = _run_counted(fused, x)[1]
    if predict is not None and report.status == STATUS_EXACT:
        plain = rm.convert(model, downsample)  # type: ignore[arg-type]
        report.predicted_speedup = predict(plain, model, tuple(x.shape))
    return report


def _summarise(report: ModelReport) -> None:
    parts = report.parts
    report.residual_blocks = sum(p.residual for p in parts)
    report.blocks_converted = sum(p.residual and p.status == STATUS_EXACT for p in parts)
    report.reserved = sum(p.reserved for p in parts)
    failed = [p for p in parts if p.status != STATUS_EXACT]
    if failed:
        first = failed[0]
        report.status = STATUS_SIZE if all(p.status == STATUS_SIZE for p in failed) else STATUS_REFUSED
        report.reason = f"{len(failed)} of {len(parts)} parts do not convert; first: {first.reason}"
        report.failing_path, report.failing_type = first.failing_path, first.failing_type
        return
    report.params_after = sum(p.params_after or 0 for p in parts)
    if all(p.macs_after is not None for p in parts):
        report.macs_after = sum(p.macs_after or 0 for p in parts)


# --- output -----------------------------------------------------------------------------------------

COLUMNS = ("path", "module_type", "residual", "status", "params_before", "params_after", "macs_before",
           "macs_after", "reserved", "failing_path", "failing_type", "reason")


def _human(value: int | None, unit: float, digits: int = 2) -> str:
    return "-" if value is None else f"{value / unit:.{digits}f}"


def format_table(report: ModelReport) -> str:
    """A terminal table: one row per part, then the totals and the verdict."""
    header = ("part", "type", "RM", "params M", "-> M", "MACs M", "-> M", "reserved", "why not")
    rows = []
    for p in report.parts:
        why = "" if p.status == STATUS_EXACT else f"{p.failing_path} ({p.failing_type})"
        rows.append((p.path, p.module_type, p.status if p.residual or p.status != STATUS_EXACT else "plain",
                     _human(p.params_before, 1e6), _human(p.params_after, 1e6), _human(p.macs_before, 1e6),
                     _human(p.macs_after, 1e6), str(p.reserved) if p.residual else "", why))
    rows.append(("total", report.model_type, report.status, _human(report.params_before, 1e6),
                 _human(report.params_after, 1e6), _human(report.macs_before, 1e6), _human(report.macs_after, 1e6),
                 str(report.reserved), f"{report.failing_path} ({report.failing_type})" if report.failing_path else ""))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"{report.model}: input 1x3x{report.input_size}x{report.input_size}, downsample={report.downsample}, "
             f"{report.blocks_converted} of {report.residual_blocks} residual blocks convert exactly"]
    for index, row in enumerate([header, *rows]):
        lines.append("  ".join(str(v).ljust(w) if i in (0, 1, 2, 8) else str(v).rjust(w)
                               for i, (v, w) in enumerate(zip(row, widths))).rstrip())
        if index == 0 or index == len(rows) - 1:
            lines.append("  ".join("-" * w for w in widths))
    lines.append(f"verdict: {report.status}" + (f" - {report.reason}" if report.reason else ""))
    if report.predicted_speedup is not None:
        lines.append(f"predicted speed-up of the plain network (cost model, a roofline prediction, not a "
                     f"measurement): x{report.predicted_speedup:.3f}")
    return "\n".join(lines)


def format_csv(report: ModelReport) -> str:
    rows = [{column: getattr(p, column) for column in COLUMNS} for p in report.parts]
    rows.append({"path": "total", "module_type": report.model_type, "residual": report.residual_blocks,
                 "status": report.status, "params_before": report.params_before,
                 "params_after": report.params_after, "macs_before": report.macs_before,
                 "macs_after": report.macs_after, "reserved": report.reserved, "failing_path": report.failing_path,
                 "failing_type": report.failing_type, "reason": report.reason})
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    for column in ("params_before", "params_after", "macs_before", "macs_after", "reserved"):
        frame[column] = frame[column].astype("Int64")  # integers, empty where unknown
    frame.insert(0, "model", report.model)
    frame.insert(1, "input_size", report.input_size)
    return frame.to_csv(index=False)


def format_report(report: ModelReport, fmt: str) -> str:
    if fmt == "table":
        return format_table(report)
    if fmt == "csv":
        return format_csv(report)
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2)
    raise ValueError(f"--format must be one of {FORMATS}, got {fmt!r}")
