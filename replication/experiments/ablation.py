"""Figure 7: speed-up of RMNet (deploy form) over the same network with its residuals (training form,
a ResNet-style inverted-residual network) as batch size, basic width, multiply times (expand ratio) and
channels per group vary. Each speed-up is a paired, interleaved ratio with a bootstrap 95 % CI
(:func:`replication.measure.paired.measure_pair`), so a busy machine widens the CI instead of moving
the ratio."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import pandas as pd
import torch

from .. import rm, zoo
from ..atomic_io import write_csv_atomic
from ..measure.paired import measure_pair
from ..measure.throughput import ThroughputConfig, environment
from ..progress import ProgressBar, progress

FACTORS = ("batch_size", "width", "expand_ratio", "group_width")
SCALING = "batch_scaling"  # rows of Fig. 7's "speed grows linearly with batch size" (RM form only)


class _FirstSamples(torch.nn.Module):
    """``model`` on the first ``n`` samples of its batch: timed beside ``model`` on the whole batch of
    ``b``, the paired ratio images/s(whole) / images/s(first n) as measured (both counted as ``b`` images)
    is time(n) / time(b), the scaling efficiency: 1 when the speed grows linearly from batch n to b."""

    def __init__(self, model: torch.nn.Module, n: int) -> None:
        super().__init__()
        self.model, self.n = model, n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x[: self.n])


def variant_kwargs(base: dict[str, Any], factor: str, value: int) -> dict[str, Any]:
    """The constructor arguments of one point of a sweep: the base's, with the swept factor set."""
    kwargs = dict(base.get("model_kwargs", {}))
    if factor == "width":
        kwargs["widths"] = tuple(value * 2**i for i in range(4))
    elif factor == "expand_ratio":
        kwargs["expand_ratio"] = value
    elif factor == "group_width":
        kwargs["group_width"] = value
    return kwargs


def _model(base: dict[str, Any], factor: str, value: int) -> torch.nn.Module:
    return zoo.create(base["model"], num_classes=10, **variant_kwargs(base, factor, value)).eval()


def run(base: dict[str, Any], sweeps: dict[str, list[int]], speed: dict[str, Any], *, input_size: int,
        profile: str, output: str | os.PathLike) -> pd.DataFrame:
    config = ThroughputConfig(batch_size=speed["batch_size"], input_size=(3, input_size, input_size),
                              warmup=speed["warmup"], iters=speed["iters"], repeats=speed["repeats"],
                              device=speed.get("device", "cuda" if torch.cuda.is_available() else "cpu"))
    rows = []
    batches = sweeps.get("batch_size", [])
    bar = progress(total=sum(len(sweeps.get(f, [])) for f in FACTORS) + len(_scaling_batches(batches)),
                   desc="ablation", unit="pair")
    for factor in FACTORS:
        for value in sweeps.get(factor, []):
            run_config = replace(config, batch_size=value) if factor == "batch_size" else config
            model = _model(base, factor, value)
            pair = measure_pair(rm.convert(model), model, run_config, rounds=speed.get("rounds", 8),
                                max_rounds=speed.get("max_rounds", 32), time_cap_s=speed.get("pair_time_cap_s", 300.0),
                                names=(f"{base['model']} deploy", f"{base['model']} train"))
            rows.append({"profile": profile, "model": base["model"], "factor": factor, "value": value,
                         "ips_resnet_form": pair.images_per_sec_b, "ips_rmnet": pair.images_per_sec_a,
                         "speedup": pair.ratio, "speedup_ci_low": pair.ci_low, "speedup_ci_high": pair.ci_high,
                         "rounds": pair.rounds, "unstable": pair.unstable, "unstable_reason": pair.unstable_reason,
                         "outliers": pair.outliers, "pair_id": f"ablation:{factor}={value}",
                         "load_start": pair.load_start, "load_end": pair.load_end, "other_cpu": pair.other_cpu,
                         "busy": pair.busy, **environment(run_config)})
            bar.set_postfix_str(f"{factor}={value}")
            bar.update()
    rows += _batch_scaling(base, batches, speed, config, profile, bar)
    bar.close()
    frame = pd.DataFrame(rows)
    write_csv_atomic(frame, output)
    return frame


def _scaling_batches(batches: list[int]) -> list[int]:
    """The batch sizes timed against the sweep's smallest one (none with fewer than two sizes)."""
    return sorted(b for b in batches if b > min(batches)) if len(batches) > 1 else []


def _batch_scaling(base: dict[str, Any], batches: list[int], speed: dict[str, Any], config: ThroughputConfig,
                   profile: str, bar: ProgressBar) -> list[dict[str, Any]]:
    """Scaling efficiency of the RM form from the smallest batch of the sweep to each larger one,
    as paired ratios (``speedup`` = time(smallest) / time(b) per batch; 1 = linear growth)."""
    if len(batches) < 2:
        return []
    smallest = min(batches)
    deploy = rm.convert(_model(base, "batch_size", smallest))
    rows = []
    for value in _scaling_batches(batches):
        run_config = replace(config, batch_size=value)
        pair = measure_pair(deploy, _FirstSamples(deploy, smallest), run_config, rounds=speed.get("rounds", 8),
                            max_rounds=speed.get("max_rounds", 32), time_cap_s=speed.get("pair_time_cap_s", 300.0),
                            names=(f"{base['model']} deploy, batch {value}",
                                   f"{base['model']} deploy, batch {smallest}"))
        rows.append({"profile": profile, "model": base["model"], "factor": SCALING, "value": value,
                     "reference_batch": smallest, "ips_resnet_form": float("nan"), "ips_rmnet": float("nan"),
                     "speedup": pair.ratio, "speedup_ci_low": pair.ci_low, "speedup_ci_high": pair.ci_high,
                     "rounds": pair.rounds, "unstable": pair.unstable, "unstable_reason": pair.unstable_reason,
                     "outliers": pair.outliers, "pair_id": f"ablation:{SCALING}={smallest}->{value}",
                     "load_start": pair.load_start, "load_end": pair.load_end, "other_cpu": pair.other_cpu,
                     "busy": pair.busy, **environment(run_config)})
        bar.set_postfix_str(f"batch scaling {smallest}->{value}")
        bar.update()
    return rows
