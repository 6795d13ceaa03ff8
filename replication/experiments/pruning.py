"""Figure 6: accuracy vs speed and vs pruned-parameter ratio, ResNet-18 (Torch-Pruning under residual
constraints) vs RMNet-18 (RM + network slimming), at each threshold, from one sparsity-trained model.
Accuracies are measured right after pruning (no fine-tuning). ``pruned_params_ratio`` is relative to
the trained ResNet for both methods; RMNet starts from its RM form (``params_plain_unpruned``, about
twice the ResNet), so it must remove more than half of that to come out smaller. Both methods apply
the same rule (BN scale below the threshold); the baseline keeps the residual constraint. Speed is
the paired, interleaved ratio of each pruned network over the unpruned trained ResNet
(``speedup_vs_unpruned``, with a bootstrap 95 % CI), so runs on a busy machine stay comparable."""

from __future__ import annotations

import json
import os
from typing import Any

import pandas as pd
from torch.utils.data import DataLoader

from .. import rm
from ..atomic_io import write_csv_atomic
from ..data import DataConfig, build_datasets
from ..measure import count_macs, count_params
from ..measure.paired import measure_pair
from ..measure.throughput import ThroughputConfig, environment
from ..prune import slim_and_prune
from ..prune.baseline import prune_resnet_baseline
from ..train import evaluate
from ..train.checkpoint import plain_values
from .training_runs import load_trained


def run(sparse_run: dict[str, Any], checkpoint: str | os.PathLike, *, thresholds: list[float], dataset: str,
        data: dict[str, Any], speed: dict[str, Any], profile: str, output: str | os.PathLike,
        seed: int = 0) -> pd.DataFrame:
    model = load_trained(sparse_run, checkpoint)
    _, test_set, info = build_datasets(DataConfig.from_mapping(data, dataset))
    loader = DataLoader(test_set, batch_size=128)
    size = (info.in_chans, info.image_size, info.image_size)
    config = ThroughputConfig(batch_size=speed["batch_size"], input_size=size, warmup=speed["warmup"],
                              iters=speed["iters"], repeats=speed["repeats"], device=speed.get("device", "cpu"))
    original = count_params(model)
    unpruned_top1 = evaluate(model, loader, "cpu")["top1"]
    plain_unpruned = count_params(rm.convert(model))
    rows = []
    for threshold in thresholds:
        _, rmnet, report = slim_and_prune(model, threshold)
        resnet, _ = prune_resnet_baseline(model, threshold, size)
        for method, pruned in (("RMNet 18 (RM + slimming)", rmnet), ("ResNet 18 (Torch-Pruning)", resnet)):
            accuracy = evaluate(pruned, loader, "cpu")
            pair = measure_pair(pruned, model, config, rounds=speed.get("rounds", 8),
                                max_rounds=speed.get("max_rounds", 32), time_cap_s=speed.get("pair_time_cap_s", 300.0),
                                names=(f"{method} at {threshold}", "unpruned ResNet 18"))
            rows.append({"profile": profile, "dataset": dataset, "seed": seed, "method": method,
                         "threshold": threshold,
                         "model_kwargs": json.dumps(plain_values(sparse_run.get("model_kwargs", {})), sort_keys=True),
                         "params": count_params(pruned), "params_original": original,
                         "pruned_params_ratio": 1 - count_params(pruned) / original,
                         "params_plain_unpruned": plain_unpruned,
                         "macs": count_macs(pruned, size), "top1": accuracy["top1"], "top1_unpruned": unpruned_top1,
                         "test_samples": accuracy["samples"], "images_per_sec": pair.images_per_sec_a,
                         "images_per_sec_unpruned": pair.images_per_sec_b,
                         **pair.as_row("speedup_vs_unpruned_",
                                       pair_id=f"pruning:{dataset}:seed{seed}:{method}:{threshold}"),
                         "masked_channels": report.masked_channels, "total_channels": report.total_channels,
                         **environment(config)})
    frame = pd.DataFrame(rows)
    write_csv_atomic(frame, output)
    return frame
