"""Table 2: MobileNetV2 trained, converted to RMNetV1 / MobileNetV1 form without training, and a
MobileNetV1 trained from scratch. The converted row's accuracy is measured on the converted network."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
from torch.utils.data import DataLoader

from .. import rm
from ..atomic_io import write_csv_atomic
from ..data import DataConfig, build_datasets
from ..measure import count_macs, count_params
from ..train import evaluate
from .training_runs import load_trained


def run(v2_run: dict[str, Any], v2_checkpoint: str | os.PathLike, v1_run: dict[str, Any],
        v1_checkpoint: str | os.PathLike, *, dataset: str, data: dict[str, Any], profile: str,
        output: str | os.PathLike, seed: int = 0) -> pd.DataFrame:
    _, test_set, info = build_datasets(DataConfig.from_mapping(data, dataset, seed))
    loader = DataLoader(test_set, batch_size=128)
    size = (info.in_chans, info.image_size, info.image_size)
    v2 = load_trained(v2_run, v2_checkpoint)
    converted = rm.convert(v2)
    v1 = load_trained(v1_run, v1_checkpoint)
    rows = []
    for backbone, initial, trained, model in (("MobileNetV2", "Scratch", True, v2),
                                              ("RMNetV1", "MobileNetV2", False, converted),
                                              ("MobileNetV1", "Scratch", True, v1)):
        metrics = evaluate(model, loader, "cpu")
        rows.append({"profile": profile, "dataset": dataset, "seed": seed, "backbone": backbone, "initial": initial,
                     "trained": trained, "params": count_params(model), "macs": count_macs(model, size),
                     "top1": metrics["top1"], "top5": metrics["top5"], "test_samples": metrics["samples"],
                     "image_size": info.image_size})
    frame = pd.DataFrame(rows)
    write_csv_atomic(frame, output)
    return frame
