"""Throughput of any model with the paper's protocol, alone or as a paired ratio against another one.

What ``rmnet throughput --model NAME_OR_CHECKPOINT [--compare OTHER | --compare-rm]`` runs: a model is a
timm name (``timm:NAME`` or a bare name, this project's models included), ``torchvision:NAME``, or a file:
a plain network written by ``rmnet convert`` (``.pt`` / ``.safetensors``), a checkpoint written by
``rmnet train`` (it records its model), or a bare state_dict with ``--arch NAME``. One model is timed with
:func:`replication.measure.throughput.measure_throughput`; two as a pair with
:func:`replication.measure.paired.measure_pair` (interleaved rounds, median ratio, bootstrap 95 % CI).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import rm, zoo
from ..checkpoint_files import CheckpointError, load_checkpoint, load_weights
from ..measure.paired import PairedRatio, format_ratio, measure_pair
from ..measure.throughput import ThroughputConfig, ThroughputResult, measure_throughput
from ..rm.plain_io import FORMAT as PLAIN_FORMAT, load_plain


@dataclass
class TimedModel:
    name: str
    module: nn.Module
    input_size: tuple[int, int, int] | None  # the model's own (timm default config, training size), if known


def _timm_input_size(model: nn.Module) -> tuple[int, int, int] | None:
    config = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    size = config.get("input_size")
    return tuple(size) if size and len(size) == 3 else None


def load_model(spec: str, *, arch: str | None = None, num_classes: int | None = None) -> TimedModel:
    """The model ``spec`` names: a file (see the module doc) or a model name for :func:`replication.zoo.create`."""
    path = Path(spec)
    kwargs: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
    if not path.is_file():
        if path.suffix in (".pt", ".pth", ".pt2", ".safetensors", ".bin", ".ckpt"):
            raise CheckpointError(f"checkpoint file not found: {path}")
        model = zoo.create(spec, **kwargs)
        return TimedModel(spec, model, _timm_input_size(model))
    if path.suffix == ".safetensors":
        return TimedModel(path.name, load_plain(path), None)
    payload = load_checkpoint(path)
    if isinstance(payload, dict) and payload.get("format") == PLAIN_FORMAT:
        return TimedModel(path.name, load_plain(path), None)
    from ..train.checkpoint import ModelSpec  # the engine's package; only a training checkpoint needs it

    recorded = ModelSpec.from_checkpoint(payload)
    if recorded is not None:
        model = recorded.build()
        load_weights(model, path, payload)
        side = recorded.image_size
        return TimedModel(f"{path.name} ({recorded.model})", model,
                          (recorded.in_chans, side, side) if side else _timm_input_size(model))
    if arch is None:
        raise CheckpointError(f"{path} does not record which model it holds (a bare state_dict or a file from "
                              "another tool): name its architecture with --arch (e.g. --arch resnet50)")
    model = zoo.create(arch, **kwargs)
    load_weights(model, path, payload)
    return TimedModel(f"{path.name} ({arch})", model, _timm_input_size(model))


def rm_form(model: TimedModel, downsample: str = "dirac") -> TimedModel:
    """The model's RM (plain) form, for ``--compare-rm``."""
    return TimedModel(f"{model.name} RM form", rm.convert(model.module.eval(), downsample),  # type: ignore[arg-type]
                      model.input_size)


def time_one(model: TimedModel, config: ThroughputConfig) -> ThroughputResult:
    return measure_throughput(model.module, config, name=model.name)


def time_pair(first: TimedModel, second: TimedModel, config: ThroughputConfig, *, rounds: int, max_rounds: int,
              time_cap_s: float | None) -> PairedRatio:
    return measure_pair(first.module, second.module, config, rounds=rounds, max_rounds=max_rounds,
                        time_cap_s=time_cap_s, names=(first.name, second.name))


def single_lines(model: TimedModel, config: ThroughputConfig, result: ThroughputResult) -> list[str]:
    return [f"{model.name}: {result.images_per_sec:.1f} images/s (median of {config.repeats} repeats; min "
            f"{result.images_per_sec_min:.1f}, max {result.images_per_sec_max:.1f}), {result.ms_per_batch:.2f} ms "
            f"per batch of {config.batch_size}"]


def pair_lines(first: TimedModel, second: TimedModel, pair: PairedRatio) -> list[str]:
    lines = [f"{first.name}: {pair.images_per_sec_a:.1f} images/s (median over rounds)",
             f"{second.name}: {pair.images_per_sec_b:.1f} images/s (median over rounds)",
             f"speed ratio {first.name} / {second.name}: "
             f"{format_ratio(pair.ratio, pair.ci_low, pair.ci_high, pair.unstable, digits=3)} "
             f"(median of {pair.rounds} paired rounds, bootstrap 95 % CI)"]
    if pair.unstable:
        lines.append(f"unstable: {pair.unstable_reason}")
    if pair.busy:
        lines.append(f"busy machine: other processes used {100 * pair.other_cpu:.0f} % of the CPU meanwhile")
    return lines


def describe(config: ThroughputConfig) -> str:
    threads = torch.get_num_threads() if config.threads is None else config.threads
    return (f"protocol: batch {config.batch_size}, input {'x'.join(map(str, config.input_size))}, {config.warmup} "
            f"warm-up + {config.iters} timed batches, {config.repeats} repeats, {config.device}, {config.dtype}, "
            f"{threads} threads")
