"""Throughput of every Table 1 and Table 2 model, in the forms the paper compares, side by side.

Each paper row is timed in its training form and its deploy form (``replication.rm.convert``), and
optionally through ONNX Runtime. Every ratio the tables report (deploy over training form; the group's
RMNet over each other row) is measured as a pair, interleaved, with a bootstrap CI
(:mod:`replication.measure.paired`); absolute images/s come from single-model rows with the paper's
protocol. Each row records the load average at its start and end and a ``busy`` flag, and the cost
model's FLOPs and bytes per image (for the roofline figure). Rows go to a CSV one model at a time
(atomic rewrite), so a crash keeps every finished measurement. The RM (deploy) form of bottleneck
ResNets and ResNeXts at 224x224 is 0.3-0.8 G parameters and is not what the paper times; it is
skipped (``SKIP_DEPLOY``) and said so in the docs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .. import rm, zoo
from ..atomic_io import append_rows_atomic
from ..deploy.onnx import OnnxUnavailable, export_and_check, measure_onnxruntime
from ..measure import cost_model, count_macs
from ..measure.paired import contention, is_busy, measure_pair
from ..measure.peak import memory_bandwidth, peak_flops
from ..measure.throughput import (
    ThroughputConfig,
    ThroughputError,
    device_name,
    environment,
    measure_throughput,
    result_row,
)
from ..progress import progress
from .paper_rows import PAPER_ROWS, PaperRow

# The form the paper times for each backbone: RMNet and re-parameterised models deployed, ResNets as trained.
TRAIN_FORM_BACKBONES = ("ResNet", "ResNeXt", "MobileNetV2")
SKIP_DEPLOY = {"timm:resnet50", "timm:resnet101", "timm:resnet152", "timm:resnext50_32x4d", "timm:resnext101_32x8d"}
# Table 1's ImageNet rows come in groups of comparable cost; the RMNet of each group is compared with the rest.
IMAGENET_GROUPS = {
    "ResNet 50": 1, "ResDistill 50": 1, "RMNet 41x4_8": 1,
    "ResNeXt 50": 2, "RepVGG B1": 2, "RMNet 41x5_16": 2,
    "ResNet 101": 3, "VGG 16": 3, "RepVGG B2": 3, "RMNet 50x5_32": 3,
    "ResNet 152": 4, "RepVGG B3": 4, "RMNet 50x6_32": 4,
    "ResNeXt 101": 5, "RMNet 101x6_16": 5, "RMNet 152x6_32": 5,
}


@dataclass(frozen=True)
class TimingRow:
    paper: PaperRow
    group: str
    forms: tuple[str, ...]
    paper_form: str

    @property
    def is_rmnet(self) -> bool:
        return self.paper.backbone.startswith("RMNet")


def paper_form(backbone: str) -> str:
    return "train" if backbone.startswith(TRAIN_FORM_BACKBONES) else "deploy"


def timing_rows(tables: tuple[str, ...] = ("table1_sota", "table2_mobilenet"), datasets: tuple[str, ...] | None = None
                ) -> list[TimingRow]:
    """The rows to time, one per paper row (RMNetV1 is the MobileNetV2 row's deploy form)."""
    rows = []
    for row in PAPER_ROWS:
        if row.table not in tables or (datasets and row.dataset not in datasets) or row.backbone == "RMNetV1":
            continue
        group = f"{row.table}/{row.dataset}"
        if row.dataset == "ImageNet":
            group += f"/group{IMAGENET_GROUPS[row.backbone]}"
        forms = ("train",) if row.model in SKIP_DEPLOY else ("train", "deploy")
        rows.append(TimingRow(row, group, forms, paper_form(row.backbone)))
    return rows


def _onnx_row(model_name: str, form: str, module: torch.nn.Module, config: ThroughputConfig, context: dict,
              macs: int, workdir: Path) -> dict:
    """Export one form to ONNX, check it against PyTorch (<= 1e-5) and time it in ONNX Runtime (CPU)."""
    onnx_config = replace(config, device="cpu", dtype="float32")
    path = workdir / f"{model_name.replace(':', '_')}-{form}.onnx"
    try:
        path, error = export_and_check(module, config.input_size, path)
        result = measure_onnxruntime(path, onnx_config)
    except OnnxUnavailable as missing:
        return result_row(model_name, form, onnx_config, None, runtime="onnxruntime", status=f"skipped: {missing}",
                          macs=macs, **context)
    return result_row(model_name, form, onnx_config, result, runtime="onnxruntime", onnx_max_rel_error=error,
                      macs=macs, **context)


@dataclass(frozen=True)
class PairSettings:
    """How the throughput experiment's ratios are measured (:func:`replication.measure.paired.measure_pair`)."""

    rounds: int = 8
    max_rounds: int = 32
    time_cap_s: float | None = 300.0
    tolerance: float = 0.05


def _status(error: ThroughputError) -> str:
    return "oom" if error.out_of_memory else f"error: {error}"


def _cost_columns(module: torch.nn.Module, config: ThroughputConfig) -> dict[str, object]:
    """FLOPs, bytes and kernels per image of one forward pass at this batch (cost model, meta device)."""
    cost = cost_model.trace(module, (config.batch_size, *config.input_size),
                            dtype={"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}[config.dtype])
    return {"flops_per_image": cost.flops / config.batch_size, "bytes_per_image": cost.bytes / config.batch_size,
            "weight_bytes": cost.weight_bytes, "kernels": len(cost.kernels)}


def _single(row: TimingRow, form: str, module: torch.nn.Module, config: ThroughputConfig, context: dict,
            macs: int) -> dict[str, object]:
    """Absolute images/s of one form with the paper's protocol, with the machine's load meanwhile."""
    extra: dict[str, object] = {"measure": "single", "pair_id": ""}
    with contention() as stats:
        try:
            measured = measure_throughput(module, config, name=f"{row.paper.model} ({form})")
            status = "ok"
        except ThroughputError as error:
            measured, status = None, _status(error)
    extra.update(load_start=stats["load_start"], load_end=stats["load_end"], other_cpu=stats["other_cpu"],
                 busy=is_busy(stats))
    return {**result_row(row.paper.model, form, config, measured, status=status, macs=macs, **context), **extra}


def _pair(kind: str, a: tuple[TimingRow, str, torch.nn.Module], b: tuple[TimingRow, str, torch.nn.Module],
          on: TimingRow, config: ThroughputConfig, context: dict, settings: PairSettings) -> dict[str, object]:
    """One paired ratio A / B as a row; ``on`` is the paper row the ratio is reported on."""
    (row_a, form_a, module_a), (row_b, form_b, module_b) = a, b
    pair_id = f"{on.group}:{row_a.paper.backbone}:{form_a}/{row_b.paper.backbone}:{form_b}"
    names = (f"{row_a.paper.model} ({form_a})", f"{row_b.paper.model} ({form_b})")
    pair_config = replace(config, repeats=1)  # a pair counts rounds, not repeats
    row: dict[str, object] = {
        "model": on.paper.model, "form": "pair", "runtime": "pytorch", **environment(pair_config), **context,
        "measure": "pair", "pair_id": pair_id, "ratio_kind": kind,
        "a_model": row_a.paper.model, "a_backbone": row_a.paper.backbone, "a_form": form_a,
        "b_model": row_b.paper.model, "b_backbone": row_b.paper.backbone, "b_form": form_b}
    try:
        pair = measure_pair(module_a, module_b, pair_config, rounds=settings.rounds, max_rounds=settings.max_rounds,
                            tolerance=settings.tolerance, time_cap_s=settings.time_cap_s, names=names)
    except ThroughputError as error:
        return {**row, "status": _status(error), "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    return {**row, "status": "ok", **pair.as_row(), "images_per_sec_a": pair.images_per_sec_a,
            "images_per_sec_b": pair.images_per_sec_b, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def run(output: str | os.PathLike, rows: list[TimingRow], base: ThroughputConfig, *, profile: str,
        note: str = "", onnx: bool = False, pairs: PairSettings | None = PairSettings()) -> Path:
    """Time every row's forms and append the results to ``output``; returns the CSV path.

    Per row: each form alone with the paper's protocol (``measure=single``: absolute images/s), then,
    unless ``pairs`` is None, its deploy form over its training form, and the group's RMNet (deploy)
    over the row in the form the paper timed, each as a paired ratio (``measure=pair``: ``ratio``,
    ``ratio_ci_low``, ``ratio_ci_high``, ``rounds``, ``pair_id``). An out-of-memory batch is a row with
    ``status=oom``. Rows of a paper row are written together (atomic rewrite).
    """
    output = Path(output)
    name = device_name(base.device)
    peak, peak_source = peak_flops(base.device, name, base.dtype)
    bandwidth, bandwidth_source = memory_bandwidth(base.device, name)
    cpu_peak = (peak, peak_source) if base.device == "cpu" and base.dtype == "float32" else None
    if onnx and cpu_peak is None:
        cpu_peak = peak_flops("cpu", device_name("cpu"), "float32")
    groups: dict[str, list[TimingRow]] = {}
    for row in rows:
        groups.setdefault(row.group, []).append(row)
    bar = progress(total=len(rows), desc="throughput", unit="model")
    for group_rows in groups.values():
        rmnet: tuple[TimingRow, str, torch.nn.Module] | None = None
        # the group's RMNet first, so that every other row can be paired with its deploy form
        for row in sorted(group_rows, key=lambda r: not r.is_rmnet):
            config = replace(base, input_size=(3, row.paper.input_size, row.paper.input_size))
            torch.manual_seed(0)
            model = zoo.create(row.paper.model, num_classes=row.paper.num_classes).eval()
            forms = {"train": model}
            if "deploy" in row.forms:
                forms["deploy"] = rm.convert(model)
            context = {"profile": profile, "table": row.paper.table, "dataset": row.paper.dataset,
                       "backbone": row.paper.backbone, "group": row.group, "paper_form": row.paper_form,
                       "is_rmnet": row.is_rmnet, "num_classes": row.paper.num_classes, "note": note,
                       "peak_flops": peak, "peak_source": peak_source, "bandwidth": bandwidth,
                       "bandwidth_source": bandwidth_source}
            results = []
            for form, module in forms.items():
                macs = count_macs(module, config.input_size)
                form_context = {**context, **_cost_columns(module, config)}
                if onnx:
                    assert cpu_peak is not None  # set above whenever onnx is on
                    onnx_context = {**form_context, "peak_flops": cpu_peak[0], "peak_source": cpu_peak[1],
                                    "measure": "single", "pair_id": ""}
                    results.append(_onnx_row(row.paper.model, form, module, config, onnx_context, macs,
                                             output.parent / "onnx"))
                results.append(_single(row, form, module, config, form_context, macs))
            if pairs is not None:
                if "deploy" in forms:
                    results.append(_pair("deploy_over_train", (row, "deploy", forms["deploy"]),
                                         (row, "train", forms["train"]), row, config, context, pairs))
                if row.is_rmnet and rmnet is None and "deploy" in forms:
                    rmnet = (row, "deploy", forms["deploy"])
                elif not row.is_rmnet and rmnet is not None:
                    results.append(_pair("rmnet_over_this", rmnet, (row, row.paper_form, forms[row.paper_form]),
                                         row, config, context, pairs))
            append_rows_atomic(results, output)
            bar.set_postfix_str(row.paper.model)
            bar.update()
    bar.close()
    return output
