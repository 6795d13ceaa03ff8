"""Figure 9: fine-tuning a trained ResNet after conversion, with BN (calibrated, Eq. 2) and without BN
(fused), against the trained baseline's accuracy."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..data import build_datasets
from ..train import TrainConfig, train
from ..train.finetune import prepare_for_finetuning
from .training_runs import data_config, load_trained


def run(base_run: dict[str, Any], base_checkpoint: str | os.PathLike, *, mode: str, dataset: str,
        data: dict[str, Any], training: dict[str, Any], profile: str, calibration_batches: int,
        checkpoint_dir: str | os.PathLike, metrics_csv: str | os.PathLike) -> None:
    model = load_trained(base_run, base_checkpoint)
    train_set, _, _ = build_datasets(data_config(data, dataset))  # "statistics over the training dataset"
    loader = DataLoader(train_set, batch_size=64, shuffle=False)
    calibration = [images for _, (images, _) in zip(range(calibration_batches), loader)]
    plain = prepare_for_finetuning(model, mode, calibration)
    overrides = {**training.get("overrides", {}), **training.get("finetune_overrides", {})}
    config = TrainConfig(model=f"{base_run['model']}-rm-{mode}", data=data_config(data, dataset),
                         preset=training.get("finetune_preset", "cifar_finetune"), overrides=overrides,
                         output_dir=str(checkpoint_dir), seed=training.get("seed", 0), profile=profile,
                         **({"device": training["device"]} if training.get("device") else {}))
    torch.manual_seed(training.get("seed", 0))
    train(config, model=plain)
    Path(metrics_csv).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(checkpoint_dir) / "metrics.csv", metrics_csv)
