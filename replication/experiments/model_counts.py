"""Parameters and MACs of every model row of paper Tables 1-3, in training and deploy form.

The deploy form is ``replication.rm.convert`` (RM for residual models, re-parameterisation for RepVGG
and DiracNet, BN folding for already-plain ones). Counts use torch.utils.flop_counter at the paper's
input size, batch 1. Rows are written with their full context so the CSV stands on its own.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import torch

from .. import rm, zoo
from ..atomic_io import write_csv_atomic
from ..measure import count_macs, count_params
from ..progress import progress
from .paper_rows import PAPER_ROWS, PaperRow

COLUMNS = ["table", "dataset", "backbone", "model", "form", "num_classes", "input_size", "params", "macs",
           "counter", "torch_version", "python_version"]


def count_model(model_name: str, num_classes: int, input_size: int) -> list[dict[str, object]]:
    """Count one model in both forms; returns one row per form."""
    torch.manual_seed(0)
    model = zoo.create(model_name, num_classes=num_classes).eval()
    deploy = rm.convert(model)
    size = (3, input_size, input_size)
    rows = []
    for form, module in (("train", model), ("deploy", deploy)):
        params = count_params(module)
        module.to("meta")  # MACs need shapes only; the meta device skips the arithmetic
        rows.append({"model": model_name, "form": form, "num_classes": num_classes, "input_size": input_size,
                     "params": params, "macs": count_macs(module, size)})
    return rows


def run(output: str | Path, rows: Iterable[PaperRow] = PAPER_ROWS) -> pd.DataFrame:
    """Count every row and write ``output`` (CSV, one line per row and form)."""
    records = []
    cache: dict[tuple[str, int, int], list[dict[str, object]]] = {}
    rows = list(rows)
    for row in progress(rows, desc="counting params and MACs", unit="model"):
        key = (row.model, row.num_classes, row.input_size)
        if key not in cache:
            cache[key] = count_model(*key)
        for counted in cache[key]:
            records.append({"table": row.table, "dataset": row.dataset, "backbone": row.backbone, **counted,
                            "counter": "torch.utils.flop_counter (MACs = FLOPs / 2, conv + linear only)",
                            "torch_version": torch.__version__, "python_version": platform.python_version()})
    frame = pd.DataFrame.from_records(records, columns=COLUMNS)
    write_csv_atomic(frame, output)
    return frame
