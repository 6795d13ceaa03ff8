"""What each Snakefile rule does, one function per rule, so the rules stay thin.

Every function takes the rule's files and the workflow config; all real work is in
``replication.experiments`` (results CSVs) and ``replication.report`` (tables and figures).
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import pandas as pd
import torch

from .experiments import ablation as ablation_experiment
from .experiments import finetune as finetune_experiment
from .experiments import mobilenet as mobilenet_experiment
from .experiments import pruning as pruning_experiment
from .experiments import throughput as throughput_experiment
from .measure.throughput import ThroughputConfig
from .report import figures
from .results import write_csv_atomic


def check_config(config: dict[str, Any]) -> None:
    """What the schema cannot see, checked before any job starts: every model name can be built and
    every run an experiment names is defined. Raises ValueError listing each problem with its key."""
    from . import zoo

    problems = []
    for run, spec in config["runs"].items():
        try:
            zoo.check_name(spec["model"])
        except zoo.UnknownModelError as error:
            problems.append(f"runs.{run}.model: {error}")
    try:
        zoo.check_name(config["ablation"]["base"]["model"])
    except zoo.UnknownModelError as error:
        problems.append(f"ablation.base.model: {error}")
    experiments = config["experiments"]
    named = {f"experiments.{key}": value for key in ("sota", "depth_study", "table3", "imagenet_sota")
             for value in experiments.get(key, [])}
    named.update({"experiments.mobilenet.v2": experiments["mobilenet"]["v2"],
                  "experiments.mobilenet.v1": experiments["mobilenet"]["v1"],
                  "experiments.pruning.run": experiments["pruning"]["run"],
                  "experiments.finetune.base": experiments["finetune"]["base"]})
    problems += [f"{key}: run {run!r} is not defined under runs" for key, run in named.items()
                 if run not in config["runs"]]
    if problems:
        raise ValueError("invalid workflow config:\n  " + "\n  ".join(problems))


def _stem(path: str, suffix: str) -> str:
    return path[: -len(suffix)]


def _threads(threads: int) -> None:
    torch.set_num_threads(max(1, min(threads, os.cpu_count() or 1)))


def _throughput_config(speed: dict[str, Any]) -> ThroughputConfig:
    """The measurement settings of the config's ``throughput`` section."""
    return ThroughputConfig(batch_size=speed["batch_size"], warmup=speed["warmup"], iters=speed["iters"],
                            repeats=speed["repeats"], device=speed.get("device", "cpu"),
                            dtype=speed.get("dtype", "float32"), channels_last=speed.get("channels_last", False))


def throughput(output: str, config: dict[str, Any], profile: str, threads: int) -> None:
    _threads(threads)
    speed = config["throughput"]
    base = _throughput_config(speed)
    rows = throughput_experiment.timing_rows(tuple(speed["tables"]), tuple(speed["datasets"]))
    note = f"profile {profile}: batch {speed['batch_size']}, {speed['warmup']} warm-up, {speed['iters']} timed batches"
    pairs = throughput_experiment.PairSettings(rounds=speed.get("rounds", 8), max_rounds=speed.get("max_rounds", 32),
                                               time_cap_s=speed.get("pair_time_cap_s", 300.0))
    throughput_experiment.run(output, rows, base, profile=profile, note=note, onnx=speed.get("onnx", False),
                              pairs=pairs)


def cost_model(output: str) -> None:
    """The cost model's predictions for every Table 1 / 2 row at the paper's batch of 128 (nothing is
    timed: no ``timing`` resource)."""
    from .experiments import cost_predictions

    cost_predictions.run(output, batch_size=128)


def mobilenet(v2_checkpoint_dir: str, v1_checkpoint_dir: str, output: str, dataset: str, config: dict[str, Any],
              profile: str, seed: int) -> None:
    runs, spec = config["runs"], config["experiments"]["mobilenet"]
    mobilenet_experiment.run(runs[spec["v2"]], v2_checkpoint_dir, runs[spec["v1"]], v1_checkpoint_dir, dataset=dataset, data=config["data"], profile=profile,
                             output=output, seed=seed)


def gather_seeds(per_seed: list[str], output: str) -> None:
    """One CSV of an experiment's rows over all seeds (each row carries its ``seed``)."""
    write_csv_atomic(pd.concat([pd.read_csv(path) for path in per_seed], ignore_index=True), output)


def pruning(checkpoint_dir: str, output: str, dataset: str, config: dict[str, Any], profile: str, threads: int,
            seed: int) -> None:
    _threads(threads)
    spec = config["experiments"]["pruning"]
    pruning_experiment.run(config["runs"][spec["run"]], checkpoint_dir, thresholds=spec["thresholds"],
                           dataset=dataset, data=config["data"], speed=spec["speed"], profile=profile, output=output,
                           seed=seed)


def finetune(base_checkpoint_dir: str, metrics: str, checkpoint_dir: str, mode: str, dataset: str,
             config: dict[str, Any], profile: str, seed: int) -> None:
    spec = config["experiments"]["finetune"]
    finetune_experiment.run(config["runs"][spec["base"]], base_checkpoint_dir, mode=mode, dataset=dataset,
                            data=config["data"], training=config["training"], profile=profile,
                            calibration_batches=spec.get("calibration_batches", 8),
                            checkpoint_dir=checkpoint_dir, metrics_csv=metrics, seed=seed)


def finetune_figure(base_metrics: list[str], mode_metrics: list[str], png: str) -> None:
    """Figure 9 from the base runs' and the fine-tuning runs' metrics (``.../<mode>/seed<k>/metrics.csv``)."""
    labels = {"bn": "fine-tune with BN", "fused": "fine-tune w/o BN (fused)"}
    curves: dict[str, list[str]] = {}
    for path in mode_metrics:
        mode = os.path.basename(os.path.dirname(os.path.dirname(path)))
        curves.setdefault(labels[mode], []).append(path)
    figures.finetune(curves, base_metrics, _stem(png, ".png"))


def depth_figure(summaries: list[str], csv: str, png: str) -> None:
    write_csv_atomic(pd.concat([pd.read_csv(path) for path in summaries], ignore_index=True), csv)
    figures.depth_study(csv, _stem(png, ".png"))


def ablation(output: str, config: dict[str, Any], profile: str, threads: int) -> None:
    _threads(threads)
    spec = config["ablation"]
    ablation_experiment.run(spec["base"], spec["sweeps"], spec["speed"], input_size=spec["input_size"],
                            profile=profile, output=output)


def counts(counts_csv: str, comparison_csv: str, table: str) -> None:
    from .experiments import model_counts
    from .report import counts_table

    model_counts.run(counts_csv)
    counts_table.build(counts_csv, comparison_csv, table)


def throughput_report(csv: str, table: str, roofline_png: str, predictions_csv: str | None = None) -> None:
    from .report import roofline, throughput_table

    throughput_table.build(csv, table, predictions_csv)
    roofline.plot(csv, _stem(roofline_png, ".png"))


def exactness(output: str, profile: str) -> None:
    from .experiments import exactness as exactness_experiment

    exactness_experiment.run(output, profile)


def speed_pairs(output: str, config: dict[str, Any], profile: str, threads: int) -> None:
    from .claims import load_claims
    from .experiments import speed_pairs as pairs_experiment

    _threads(threads)
    speed = config["throughput"]
    # Pairs count rounds, not repeats: repeats=1 keeps the recorded context truthful.
    pairs_experiment.run(load_claims(), replace(_throughput_config(speed), repeats=1), rounds=speed.get("rounds", 8),
                         max_rounds=speed.get("max_rounds", 32), time_cap_s=speed.get("pair_time_cap_s", 300.0),
                         profile=profile, output=output)


def claims(results_dir: str, config: dict[str, Any], csv: str, table: str) -> None:
    """Verdicts on every claim of the ledger from this profile's results, as CSV and Markdown."""
    from .claims import Evidence, judge, load_claims
    from .report import claims_table

    frame = judge(load_claims(), Evidence(results_dir, config), smoke=bool(config.get("smoke", False)))
    write_csv_atomic(frame, csv)
    claims_table.build(csv, table)

