"""Predicted GPU throughput of every Table 1 and Table 2 row (training and deploy forms) from the cost
model (:mod:`replication.measure.cost_model`), at the paper's batch of 128.

Nothing is timed: every model is built and converted on the ``meta`` device and traced, so the whole
table takes seconds on a CPU. Each row is a *prediction* (columns ``predicted_*``) for one device spec
of ``devices.yaml``, dtype and convolution algorithm (``direct``: the model as specified; ``winograd``:
dense 3x3 stride-1 convolutions at Winograd F(2x2, 3x3)'s 2.25x fewer multiplies, an explanatory
variant, see the cost-model section of the README).
"""

from __future__ import annotations

import os

import pandas as pd
import torch

from .. import rm, zoo
from ..atomic_io import write_csv_atomic
from ..measure import cost_model
from ..progress import progress
from .throughput import timing_rows

# (device key, dtype): the paper's V100 in fp32, and what users ask about: H100 in fp32 / TF32 / fp16.
TARGETS = (("v100", "fp32"), ("a100", "fp32"), ("h100", "fp32"), ("h100", "tf32"), ("h100", "fp16"))
ALGORITHMS = {"direct": None, "winograd": cost_model.WINOGRAD_F2X2_3X3}


def build_forms(model_name: str, num_classes: int) -> dict[str, torch.nn.Module]:
    """Training form (eval mode) and RM / re-parameterised deploy form, on the meta device."""
    with torch.device("meta"):  # new modules that conversion creates land on meta as well
        model = zoo.create(model_name, num_classes=num_classes).eval()
        return {"train": model, "deploy": rm.convert(model)}


def run(output: str | os.PathLike | None = None, *, batch_size: int = 128,
        targets: tuple[tuple[str, str], ...] = TARGETS, tables: tuple[str, ...] = ("table1_sota", "table2_mobilenet"),
        datasets: tuple[str, ...] | None = None) -> pd.DataFrame:
    """One row per paper row x form x target x algorithm; written to ``output`` (atomic) if given."""
    rows = []
    for timing in progress(timing_rows(tables, datasets), desc="cost model", unit="model"):
        paper = timing.paper
        for form, module in build_forms(paper.model, paper.num_classes).items():
            shape = (batch_size, 3, paper.input_size, paper.input_size)
            traces = {}
            for device, dtype in targets:
                trace_dtype = "fp16" if dtype == "fp16" else "bf16" if dtype == "bf16" else "fp32"
                if trace_dtype not in traces:
                    traces[trace_dtype] = cost_model.trace(module, shape, dtype=trace_dtype)
                cost = traces[trace_dtype]
                spec = cost_model.device_spec(device)
                for algorithm, factor in ALGORITHMS.items():
                    prediction = cost_model.predict(cost, spec, dtype, winograd=factor)
                    rows.append({
                        "table": paper.table, "dataset": paper.dataset, "backbone": paper.backbone,
                        "model": paper.model, "form": form, "paper_form": timing.paper_form, "group": timing.group,
                        "is_rmnet": timing.is_rmnet, "batch_size": batch_size,
                        "input_size": f"3x{paper.input_size}x{paper.input_size}", "device": device,
                        "device_name": spec.name, "dtype": dtype, "conv_algorithm": algorithm,
                        "peak_flops": spec.peak(dtype), "bandwidth": spec.bandwidth,
                        "launch_per_kernel_s": spec.launch_s,
                        "flops_per_image": cost.flops / batch_size, "bytes_per_image": cost.bytes / batch_size,
                        "weight_bytes": cost.weight_bytes, "kernels": len(cost.kernels),
                        **prediction.as_row(),
                    })
    frame = pd.DataFrame(rows)
    if output is not None:
        write_csv_atomic(frame, output)
    return frame
