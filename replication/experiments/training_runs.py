"""Training runs of the accuracy experiments (Tables 1-3, Figures 5, 6, 9), driven by the workflow config.

A run is named in the config (``runs: {name: {model, model_kwargs, sparsity, ...}}``) and trained on a
dataset; its metrics land in ``<results>/train/<dataset>/<run>/metrics.csv`` and its checkpoint in
``<runs>/<dataset>/<run>/checkpoint.pt``. Summaries join the last epoch of every run with its params and
MACs, and label every row with the profile and data setting, so an embedded result is never mistaken
for the paper's setting.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..data import DataConfig
from ..measure import count_macs, count_params
from ..results import write_csv_atomic
from ..stats import chance_top1, did_not_train, summarize_seeds
from ..train import TrainConfig, train


def data_config(data: dict[str, Any], dataset: str, seed: int = 0) -> DataConfig:
    """The DataConfig of ``dataset`` under the workflow's ``data`` section."""
    roots = data.get("roots", {}) or {}
    return DataConfig(name=dataset, root=roots.get(dataset), image_size=data.get("image_size"),
                      train_subset=data.get("train_subset"), test_subset=data.get("test_subset"),
                      download=bool(data.get("download", False)), seed=seed)


def train_run(run: dict[str, Any], *, dataset: str, data: dict[str, Any], training: dict[str, Any], profile: str,
              metrics_csv: str | os.PathLike, checkpoint_dir: str | os.PathLike, threads: int | None = None,
              seed: int | None = None) -> None:
    """Train one configured run with ``seed`` (default: ``training.seed``) and copy its metrics to
    ``metrics_csv`` (resumes if interrupted). The seed drives the initialisation, the data order and
    the data subsets."""
    if threads:
        torch.set_num_threads(threads)
    seed = training.get("seed", 0) if seed is None else seed
    overrides = {**training.get("overrides", {}), **run.get("overrides", {})}
    config = TrainConfig(model=run["model"], data=data_config(data, dataset, seed),
                         preset=run.get("preset", training.get("preset", "embedded")), overrides=overrides,
                         output_dir=str(checkpoint_dir), seed=seed,
                         sparsity=float(run.get("sparsity", 0.0)), model_kwargs=run.get("model_kwargs", {}),
                         shortcut_batchnorms=bool(run.get("shortcut_batchnorms", False)),
                         workers=training.get("workers", 0), profile=profile,
                         **({"device": training["device"]} if training.get("device") else {}))
    train(config)
    Path(metrics_csv).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(checkpoint_dir) / "metrics.csv", metrics_csv)


def load_trained(run: dict[str, Any], checkpoint_dir: str | os.PathLike) -> torch.nn.Module:
    """The trained model of a run, rebuilt from its checkpoint's own record (weights_only load); a
    checkpoint made with other model arguments than the run's config is refused."""
    from ..train.checkpoint import CheckpointError, ModelSpec, load_training_checkpoint, plain_values

    path = Path(checkpoint_dir) / "checkpoint.pt"
    state = load_training_checkpoint(path, run["model"])
    spec = ModelSpec.from_checkpoint(state)
    if spec is None:
        raise CheckpointError(f"{path} does not record how to rebuild its model")
    wanted = {"model_kwargs": plain_values(run.get("model_kwargs", {})),
              "shortcut_batchnorms": bool(run.get("shortcut_batchnorms", False))}
    differences = [f"{key}: checkpoint {getattr(spec, key)!r}, config {value!r}"
                   for key, value in wanted.items() if getattr(spec, key) != value]
    if differences:
        raise CheckpointError(f"{path} was trained with other settings than the run's config now has: "
                              + "; ".join(differences) + f". Retrain it (delete {path.parent}) or restore the config.")
    model = spec.build()
    model.load_state_dict(state["model"])
    return model.eval()
