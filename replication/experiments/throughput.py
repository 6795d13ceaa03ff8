"""Throughput of every Table 1 and Table 2 model, in the forms the paper compares, side by side.

Each paper row is timed in its training form and its deploy form (``replication.rm.convert``), and
optionally through ONNX Runtime. Rows go to a CSV one model at a time (atomic rewrite), so a crash keeps
every finished measurement. The RM (deploy) form of bottleneck ResNets and ResNeXts at 224x224 is
0.3-0.8 G parameters and is not what the paper times; it is skipped (``SKIP_DEPLOY``) and said so in
the docs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import rm, zoo
from ..measure import count_macs
from ..measure.peak import peak_flops
from ..measure.throughput import ThroughputConfig, ThroughputError, device_name, measure_throughput, result_row
from ..results import append_rows_atomic
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
    from ..deploy.onnx import OnnxUnavailable, export_and_check, measure_onnxruntime

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


def run(output: str | os.PathLike, rows: list[TimingRow], base: ThroughputConfig, *, profile: str,
        note: str = "", onnx: bool = False) -> Path:
    """Time every row's forms and append the results to ``output``; returns the CSV path."""
    output = Path(output)
    peak, peak_source = peak_flops(base.device, device_name(base.device), base.dtype)
    cpu_peak = (peak, peak_source) if base.device == "cpu" and base.dtype == "float32" else None
    if onnx and cpu_peak is None:
        cpu_peak = peak_flops("cpu", device_name("cpu"), "float32")
    for row in tqdm(rows, desc="throughput", unit="model", disable=None):
        config = replace(base, input_size=(3, row.paper.input_size, row.paper.input_size))
        torch.manual_seed(0)
        model = zoo.create(row.paper.model, num_classes=row.paper.num_classes).eval()
        forms = {"train": model}
        if "deploy" in row.forms:
            forms["deploy"] = rm.convert(model)
        context = {"profile": profile, "table": row.paper.table, "dataset": row.paper.dataset,
                   "backbone": row.paper.backbone, "group": row.group, "paper_form": row.paper_form,
                   "is_rmnet": row.is_rmnet, "num_classes": row.paper.num_classes, "note": note,
                   "peak_flops": peak, "peak_source": peak_source}
        results = []
        for form, module in forms.items():
            macs = count_macs(module, config.input_size)
            if onnx:
                onnx_context = {**context, "peak_flops": cpu_peak[0], "peak_source": cpu_peak[1]}
                results.append(_onnx_row(row.paper.model, form, module, config, onnx_context, macs,
                                         output.parent / "onnx"))
            try:
                measured = measure_throughput(module, config, name=f"{row.paper.model} ({form})")
                results.append(result_row(row.paper.model, form, config, measured, macs=macs, **context))
            except ThroughputError as error:
                status = "oom" if error.out_of_memory else f"error: {error}"
                results.append(result_row(row.paper.model, form, config, None, status=status, macs=macs, **context))
        append_rows_atomic(results, output)
    return output
