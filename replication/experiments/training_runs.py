"""Training runs of the accuracy experiments (Tables 1-3, Figures 5, 6, 9), driven by the workflow config.

A run is named in the config (``runs: {name: {model, model_kwargs, sparsity, ...}}``) and trained on a
dataset by ``python -m replication train --run-config``; its metrics land in
``<results>/train/<dataset>/<run>/metrics.csv`` and its checkpoint in
``<runs>/<dataset>/<run>/checkpoint.pt``. Summaries join the last epoch of every run with its params and
MACs, and label every row with the profile and data setting, so an embedded result is never mistaken
for the paper's setting.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .. import zoo
from ..atomic_io import write_csv_atomic
from ..measure import count_macs, count_params
from ..rm.file_io import CheckpointError
from ..stats import chance_top1, did_not_train, summarize_seeds
from ..train.checkpoint import ModelSpec, load_training_checkpoint, plain_values
from ..train.engine import read_metrics


def load_trained(run: dict[str, Any], checkpoint_dir: str | os.PathLike) -> torch.nn.Module:
    """The trained model of a run, rebuilt from its checkpoint's own record (weights_only load); a
    checkpoint made with other model arguments than the run's config is refused."""
    path = Path(checkpoint_dir) / "checkpoint.pt"
    state = load_training_checkpoint(path, run["model"])
    spec = ModelSpec.from_checkpoint(state, path)
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


def summarize(metrics_files: list[str], runs: dict[str, dict[str, Any]], output: str | os.PathLike,
              seeds_output: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per run: the last epoch's top-1 / top-5 as mean, std and 95 % CI over seeds, with params
    and MACs (training form). ``seeds_output`` gets the per-seed rows.

    Metrics files live at ``.../<dataset>/<run>/seed<k>/metrics.csv``. A seed that did not train
    (:func:`replication.stats.did_not_train`: final top-1 near chance or final test loss near ln(classes))
    is flagged ``did_not_train``: it is an outcome, counted and named in the run row
    (``did_not_train_seeds``, ``failed_seeds``), never a number in its mean or CI, which cover the
    trained seeds alone (``n_seeds``).
    """
    per_seed = []
    for metrics_file in metrics_files:
        path = Path(metrics_file)
        seed_dir = path.parent
        run_name, dataset = seed_dir.parent.name, seed_dir.parent.parent.name
        metrics = read_metrics(path)
        if metrics.empty:
            raise ValueError(f"metrics file {path} has no rows")
        last = metrics.iloc[-1].to_dict()
        per_seed.append({"run": run_name, "dataset_key": dataset, **last,
                         "did_not_train": did_not_train(float(last["top1"]), int(last["num_classes"]),
                                                        float(last["test_loss"]) if "test_loss" in last else None)})
    seeds = pd.DataFrame(per_seed)
    rows = []
    for run_name, group in seeds.groupby("run", sort=False):
        spec, first = runs[run_name], group.iloc[0]
        in_chans, size = int(first["in_chans"]), int(first["image_size"])
        model = zoo.create(spec["model"], num_classes=int(first["num_classes"]), in_chans=in_chans,
                           **spec.get("model_kwargs", {}))
        failed = group[group["did_not_train"]]
        trained = group[~group["did_not_train"]]
        top1, top5 = summarize_seeds(trained["top1"]), summarize_seeds(trained["top5"])
        context = {k: first[k] for k in ("model", "dataset", "preset", "profile", "device", "device_name", "threads",
                                         "global_batch", "epochs",
                                         "train_samples", "test_samples", "image_size", "num_classes", "in_chans",
                                         "torch_version") if k in group}
        rows.append({"run": run_name, "dataset_key": first["dataset_key"], "label": spec.get("label", run_name),
                     "model_kwargs": json.dumps(plain_values(spec.get("model_kwargs", {})), sort_keys=True),
                     "params": count_params(model), "macs": count_macs(model.eval(), (in_chans, size, size)),
                     **context, "top1": top1.mean, "top1_std": top1.std, "top1_ci_low": top1.ci_low,
                     "top1_ci_high": top1.ci_high, "top5": top5.mean, "n_seeds": top1.n,
                     "seeds": " ".join(str(int(s)) for s in group["seed"]),
                     "top1_per_seed": " ".join(f"{v:.2f}" for v in group["top1"]),
                     "did_not_train_seeds": len(failed),
                     "failed_seeds": " ".join(str(int(s)) for s in failed["seed"]),
                     "did_not_train": bool(len(failed) == len(group)),
                     "chance_top1": chance_top1(int(first["num_classes"]))})
    frame = pd.DataFrame(rows)
    write_csv_atomic(frame, output)
    if seeds_output is not None:
        write_csv_atomic(seeds, seeds_output)
    return frame
