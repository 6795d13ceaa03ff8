"""Figure 9: fine-tuning a trained ResNet after conversion, with BN (calibrated, Eq. 2) and without BN
(fused), against the trained baseline's accuracy. The metrics start with epoch 0: the prepared
network's accuracy before any fine-tuning step (equal to the base model's, the conversion being exact)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.data import DataLoader

from ..atomic_io import write_csv_atomic
from ..data import DataConfig, build_datasets
from ..train import TrainConfig, evaluate, train
from ..train.finetune import prepare_for_finetuning
from .training_runs import load_trained


def run(base_run: dict[str, Any], base_checkpoint: str | os.PathLike, *, mode: str, dataset: str,
        data: dict[str, Any], training: dict[str, Any], profile: str, calibration_batches: int,
        checkpoint_dir: str | os.PathLike, metrics_csv: str | os.PathLike, seed: int | None = None) -> None:
    seed = training.get("seed", 0) if seed is None else seed
    model = load_trained(base_run, base_checkpoint)
    # The base run's own data subsets: "statistics over the training dataset" it was trained on.
    train_set, test_set, _ = build_datasets(DataConfig.from_mapping(data, dataset, seed))
    loader = DataLoader(train_set, batch_size=64, shuffle=False)
    calibration = [images for _, (images, _) in zip(range(calibration_batches), loader)]
    plain = prepare_for_finetuning(model, mode, calibration)
    before = evaluate(plain, DataLoader(test_set, batch_size=128), "cpu")
    config = TrainConfig.from_mapping(base_run, training, data, dataset=dataset, output_dir=checkpoint_dir,
                                      profile=profile, seed=seed, finetune=True,
                                      model=f"{base_run['model']}-rm-{mode}")
    torch.manual_seed(seed)
    train(config, model=plain)
    metrics = pd.read_csv(Path(checkpoint_dir) / "metrics.csv")
    start = {**metrics.iloc[0].to_dict(), "epoch": 0, "lr": float("nan"), "train_loss": float("nan"),
             "train_top1": float("nan"), "test_loss": before["loss"], "top1": before["top1"], "top5": before["top5"],
             "seconds": 0.0, "train_images_per_sec": float("nan")}
    write_csv_atomic(pd.concat([pd.DataFrame([start]), metrics], ignore_index=True), metrics_csv)
