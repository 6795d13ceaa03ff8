"""Figure 7: speed-up of RMNet (deploy form) over the same network with its residuals (training form,
a ResNet-style inverted-residual network) as batch size, basic width, multiply times (expand ratio) and
channels per group vary. Both forms are timed side by side in one run."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import pandas as pd
import torch

from .. import rm, zoo
from ..measure.throughput import ThroughputConfig, environment, measure_throughput
from ..results import write_csv_atomic

FACTORS = ("batch_size", "width", "expand_ratio", "group_width")


def _model(base: dict[str, Any], factor: str, value: int) -> torch.nn.Module:
    kwargs = dict(base.get("model_kwargs", {}))
    if factor == "width":
        kwargs["widths"] = tuple(value * 2**i for i in range(4))
    elif factor == "expand_ratio":
        kwargs["expand_ratio"] = value
    elif factor == "group_width":
        kwargs["group_width"] = value
    return zoo.create(base["model"], num_classes=10, **kwargs).eval()


def run(base: dict[str, Any], sweeps: dict[str, list[int]], speed: dict[str, Any], *, input_size: int,
        profile: str, output: str | os.PathLike) -> pd.DataFrame:
    config = ThroughputConfig(batch_size=speed["batch_size"], input_size=(3, input_size, input_size),
                              warmup=speed["warmup"], iters=speed["iters"], repeats=speed["repeats"],
                              device=speed.get("device", "cuda" if torch.cuda.is_available() else "cpu"))
    rows = []
    for factor in FACTORS:
        for value in sweeps.get(factor, []):
            run_config = replace(config, batch_size=value) if factor == "batch_size" else config
            model = _model(base, factor, value)
            train_speed = measure_throughput(model, run_config).images_per_sec
            deploy_speed = measure_throughput(rm.convert(model), run_config).images_per_sec
            rows.append({"profile": profile, "model": base["model"], "factor": factor, "value": value,
                         "ips_resnet_form": train_speed, "ips_rmnet": deploy_speed,
                         "speedup": deploy_speed / train_speed, **environment(run_config)})
    frame = pd.DataFrame(rows)
    write_csv_atomic(frame, output)
    return frame
