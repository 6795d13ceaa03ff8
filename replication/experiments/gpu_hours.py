"""GPU-hours of a workflow profile, per experiment: an ESTIMATE from the paper's recipes and the cost model.

For every training job the profile plans (one per dataset, run and seed, each counted once, under the
first experiment that needs it) the time is

    epochs x (train_images / batch x 3 x forward(batch) + test_images / batch' x forward(batch'))

where ``forward`` is the cost model's roofline time of one forward pass of the run's model on the device,
in fp16 (the engine trains with AMP on CUDA), and a training step costs three forward passes (the
backward pass about twice the forward). The roofline assumes every kernel at the device's peak; the
paper's own V100 throughput (Tables 1-2) shows how far real kernels fall short, so the estimate is also
given ``calibrated``: multiplied by the median of predicted / measured images/s over the paper's rows
(the cost model's V100 fp32 prediction against the paper's V100 numbers). Data loading, checkpoints and
the timing rules are not counted. Fine-tuning runs use their own recipe (``finetune_preset``).

    python -m replication.experiments.gpu_hours --configfile config/paper.yaml --device h100 \
        --markdown docs/gpu-hours.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from .. import layout, zoo
from ..measure import cost_model
from ..paper import reported
from ..train.presets import get_preset
from .cost_predictions import build_forms
from .throughput import timing_rows

DATASET_IMAGES = {"cifar10": (50_000, 10_000), "cifar100": (50_000, 10_000), "imagenet": (1_281_167, 50_000),
                  "fashion_mnist": (60_000, 10_000)}
IMAGE_SIZE = {"cifar10": 32, "cifar100": 32, "imagenet": 224, "fashion_mnist": 28}
CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet": 1000, "fashion_mnist": 10}
EVAL_BATCH = 256


@dataclass(frozen=True)
class Job:
    experiment: str
    dataset: str
    run: str
    model: str
    epochs: int
    batch_size: int
    seeds: int
    model_kwargs: tuple[tuple[str, Any], ...] = ()


def _recipe(config: dict[str, Any], run: dict[str, Any], dataset: str, finetune: bool = False) -> tuple[int, int]:
    training = config["training"]
    if finetune:
        name = training.get("finetune_preset", "cifar_finetune")
        overrides = {**training.get("overrides", {}), **training.get("finetune_overrides", {})}
    else:
        name = training.get("imagenet_preset", "imagenet_repvgg") if dataset == "imagenet" else \
            run.get("preset", training.get("preset", "embedded"))
        overrides = {**training.get("overrides", {}), **run.get("overrides", {})}
    preset = get_preset(name, **overrides)
    return preset.epochs, preset.batch_size


def plan_jobs(config: dict[str, Any]) -> list[Job]:
    """The training and fine-tuning jobs of ``config`` (a workflow config), each once, under the first
    experiment that needs it."""
    seeds = len(config["training"].get("seeds") or [config["training"].get("seed", 0)])
    experiments = config["experiments"]
    datasets = list(config["datasets"])
    imagenet = bool(config.get("imagenet"))
    wanted: list[tuple[str, str, str]] = []   # (experiment, dataset, run)
    for dataset in datasets:
        wanted += [("sota", dataset, run) for run in experiments.get("sota", [])]
    if imagenet:
        wanted += [("sota (ImageNet)", "imagenet", run) for run in experiments.get("imagenet_sota", [])]
    for dataset in datasets:
        wanted += [("depth_study", dataset, run) for run in experiments.get("depth_study", [])]
    for dataset in (["imagenet"] if imagenet else datasets):
        wanted += [("table3", dataset, run) for run in experiments.get("table3", [])]
    for dataset in datasets:
        wanted += [("mobilenet", dataset, experiments["mobilenet"][key]) for key in ("v2", "v1")]
        wanted.append(("pruning", dataset, experiments["pruning"]["run"]))
        wanted += [("finetune bases", dataset, run) for run in experiments["finetune"]["bases"]]
    jobs, seen = [], set()
    for experiment, dataset, name in wanted:
        if (dataset, name) in seen:
            continue
        seen.add((dataset, name))
        run = config["runs"][name]
        epochs, batch = _recipe(config, run, dataset)
        jobs.append(Job(experiment, dataset, name, run["model"], epochs, batch, seeds,
                        tuple(sorted((run.get("model_kwargs") or {}).items()))))
    for dataset in datasets:
        for base in experiments["finetune"]["bases"]:
            run = config["runs"][base]
            epochs, batch = _recipe(config, run, dataset, finetune=True)
            for mode in experiments["finetune"]["modes"]:
                jobs.append(Job("finetune", dataset, f"{base} ({mode})", run["model"], epochs, batch, seeds,
                                tuple(sorted((run.get("model_kwargs") or {}).items()))))
    return jobs


PREDICTED = Path(__file__).resolve().parents[2] / layout.MANUAL_PREDICTED  # `rmnet cost-model` writes it


def _predicted(path: Path = PREDICTED) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """The cost model's committed predictions (rule cost_model, batch 128, direct convolution), by
    (model, form, device, dtype); empty where the file is not there."""
    if not path.exists():
        return {}
    import pandas as pd  # noqa: PLC0415

    table: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for row in pd.read_csv(path).to_dict("records"):
        if row["conv_algorithm"] == "direct":
            table.setdefault((row["model"], row["form"], row["device"], row["dtype"]), row)
    return table


def forward_seconds(model: str, dataset: str, batch: int, device: str, kwargs: tuple = (),
                    predicted: dict | None = None) -> float:
    """The cost model's fp16 forward time of one batch: from its committed batch-128 prediction of the
    same model where there is one (compute and memory time scaled to ``batch``, launches as they are),
    else traced on the meta device (nothing is allocated)."""
    known = (predicted or {}).get((model, "train", device, "fp16"))
    if known is not None and not kwargs and dataset != "fashion_mnist":
        scale = batch / float(known["batch_size"])
        return (known["predicted_compute_s"] + known["predicted_memory_s"]) * scale + known["predicted_launch_s"]
    size = IMAGE_SIZE[dataset]
    with torch.device("meta"):
        module = zoo.create(model, num_classes=CLASSES[dataset], in_chans=1 if dataset == "fashion_mnist" else 3,
                            **dict(kwargs)).train()
    cost = cost_model.trace(module, (batch, 1 if dataset == "fashion_mnist" else 3, size, size), dtype="fp16")
    return cost_model.predict(cost, device, "fp16").seconds


def calibration() -> float:
    """Median over the paper's Table 1-2 rows of predicted / measured images/s on the V100 (fp32, batch 128,
    the form the paper timed): how much faster the roofline is than the paper's kernels were."""
    speeds = {}
    for name in ("table1_sota", "table2_mobilenet"):
        for record in reported(name).itertuples():
            speeds[(name, str(record.dataset), str(record.backbone))] = float(record.imgs_per_sec)
    factors = []
    table = _predicted()
    for row in timing_rows():
        measured = speeds.get((row.paper.table, row.paper.dataset, row.paper.backbone))
        if not measured:
            continue
        known = table.get((row.paper.model, row.paper_form, "v100", "fp32"))
        if known is not None:
            predicted = float(known["predicted_images_per_sec"])
        else:
            module = build_forms(row.paper.model, row.paper.num_classes)[row.paper_form]
            shape = (128, 3, row.paper.input_size, row.paper.input_size)
            cost = cost_model.trace(module, shape, dtype="fp32")
            predicted = cost_model.predict(cost, "v100", "fp32").images_per_sec
        factors.append(predicted / measured)
    return statistics.median(factors)


def estimate(config: dict[str, Any], device: str = "h100", *, factor: float | None = None) -> list[dict[str, Any]]:
    """One row per training job: its roofline and calibrated GPU-hours (all seeds)."""
    factor = calibration() if factor is None else factor
    rows = []
    cache: dict[tuple, float] = {}
    predicted = _predicted()
    for job in plan_jobs(config):
        train_images, test_images = DATASET_IMAGES[job.dataset]
        key = (job.model, job.dataset, job.batch_size, job.model_kwargs)
        if key not in cache:
            step = 3 * forward_seconds(job.model, job.dataset, job.batch_size, device, job.model_kwargs, predicted)
            evaluation = forward_seconds(job.model, job.dataset, EVAL_BATCH, device, job.model_kwargs, predicted)
            cache[key] = (train_images // job.batch_size) * step + -(-test_images // EVAL_BATCH) * evaluation
        hours = job.epochs * cache[key] * job.seeds / 3600
        rows.append({"experiment": job.experiment, "dataset": job.dataset, "run": job.run, "model": job.model,
                     "epochs": job.epochs, "batch_size": job.batch_size, "seeds": job.seeds, "device": device,
                     "roofline_gpu_hours": hours, "calibrated_gpu_hours": hours * factor,
                     "calibration": factor})
    return rows


def markdown(rows: list[dict[str, Any]], config_name: str) -> str:
    """Per experiment and dataset: jobs, roofline and calibrated GPU-hours; then the total."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["experiment"], row["dataset"]), []).append(row)
    device = cost_model.device_spec(rows[0]["device"]).name if rows else ""
    factor = rows[0]["calibration"] if rows else float("nan")
    lines = [f"GPU-hours of `{config_name}` on one {device}, fp16 AMP: an **estimate** (cost model roofline, and "
             f"calibrated x{factor:.1f} by the paper's V100 throughput), generated by "
             "`python -m replication.experiments.gpu_hours`.", "",
             "| experiment | dataset | training jobs (runs x seeds) | epochs | roofline GPU-h | calibrated GPU-h |",
             "| --- | --- | --- | --- | --- | --- |"]
    for (experiment, dataset), part in groups.items():
        epochs = sorted({row["epochs"] for row in part})
        lines.append(f"| {experiment} | {dataset} | {len(part)} x {part[0]['seeds']} | "
                     f"{', '.join(map(str, epochs))} | {sum(r['roofline_gpu_hours'] for r in part):,.1f} | "
                     f"{sum(r['calibrated_gpu_hours'] for r in part):,.1f} |")
    lines.append(f"| **total** | | {len(rows)} x {rows[0]['seeds'] if rows else 0} | | "
                 f"{sum(r['roofline_gpu_hours'] for r in rows):,.1f} | "
                 f"{sum(r['calibrated_gpu_hours'] for r in rows):,.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m replication.experiments.gpu_hours",
                                     description="GPU-hours of a workflow profile per experiment (an estimate).")
    parser.add_argument("--configfile", default="config/paper.yaml")
    parser.add_argument("--device", default="h100", help="a devices.yaml key (v100, a100, h100, h200)")
    parser.add_argument("--markdown", help="write the table here (default: print it)")
    parser.add_argument("--csv", help="write one row per training job here")
    args = parser.parse_args(argv)
    config = yaml.safe_load(Path(args.configfile).read_text())
    rows = estimate(config, args.device)
    text = markdown(rows, args.configfile)
    if args.csv:
        import pandas as pd  # noqa: PLC0415

        pd.DataFrame(rows).to_csv(args.csv, index=False)
    if args.markdown:
        Path(args.markdown).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
