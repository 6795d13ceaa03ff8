"""What each workflow rule runs: one function per step, called from a thin ``shell:`` rule as

    python -m replication.workflow_steps <step> '<JSON object of keyword arguments>' > <log> 2>&1

so every job runs in its own process (torch never loads in the Snakemake scheduler) and its output
and traceback land in the rule's log. Each step receives only the config sections it reads: a change
elsewhere in the config does not rerun it. All real work is in ``replication.experiments`` (results
CSVs) and ``replication.report`` (tables and figures).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pandas as pd
import torch

from . import zoo
from .atomic_io import write_csv_atomic
from .claims import Evidence, judge, load_claims
from .data.datasets import DataConfig, DatasetNotFoundError, build_datasets
from .experiments import (
    ablation as ablation_experiment,
    cost_predictions,
    exactness as exactness_experiment,
    finetune as finetune_experiment,
    mobilenet as mobilenet_experiment,
    model_counts,
    pruning as pruning_experiment,
    speed_pairs as pairs_experiment,
    throughput as throughput_experiment,
)
from .experiments.training_runs import summarize
from .measure.throughput import ThroughputConfig
from .report import claims_table, counts_table, figures, paper_tables, roofline, throughput_table


def check_config(config: dict[str, Any]) -> None:
    """What the schema cannot see, checked before any job starts: every model name can be built and
    every run an experiment names is defined. Raises ValueError listing each problem with its key."""
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
                  "experiments.pruning.run": experiments["pruning"]["run"]})
    named.update({f"experiments.finetune.bases[{index}]": run
                  for index, run in enumerate(experiments["finetune"]["bases"])})
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


def throughput(output: str, throughput: dict[str, Any], profile: str, threads: int) -> None:
    _threads(threads)
    base = _throughput_config(throughput)
    rows = throughput_experiment.timing_rows(tuple(throughput["tables"]), tuple(throughput["datasets"]))
    note = (f"profile {profile}: batch {throughput['batch_size']}, {throughput['warmup']} warm-up, "
            f"{throughput['iters']} timed batches")
    pairs = throughput_experiment.PairSettings(rounds=throughput.get("rounds", 8),
                                               max_rounds=throughput.get("max_rounds", 32),
                                               time_cap_s=throughput.get("pair_time_cap_s", 300.0))
    throughput_experiment.run(output, rows, base, profile=profile, note=note, onnx=throughput.get("onnx", False),
                              pairs=pairs)


def cost_model(output: str) -> None:
    """The cost model's predictions for every Table 1 / 2 row at the paper's batch of 128 (nothing is
    timed: no ``timing`` resource)."""
    cost_predictions.run(output, batch_size=128)


def mobilenet(v2_run: dict[str, Any], v2_checkpoint_dir: str, v1_run: dict[str, Any], v1_checkpoint_dir: str,
              output: str, dataset: str, data: dict[str, Any], profile: str, seed: int) -> None:
    mobilenet_experiment.run(v2_run, v2_checkpoint_dir, v1_run, v1_checkpoint_dir, dataset=dataset, data=data,
                             profile=profile, output=output, seed=seed)


def gather_seeds(per_seed: list[str], output: str) -> None:
    """One CSV of an experiment's rows over all seeds (each row carries its ``seed``)."""
    write_csv_atomic(pd.concat([pd.read_csv(path) for path in per_seed], ignore_index=True), output)


def pruning(run: dict[str, Any], checkpoint_dir: str, output: str, dataset: str, data: dict[str, Any],
            pruning: dict[str, Any], profile: str, threads: int, seed: int) -> None:
    _threads(threads)
    pruning_experiment.run(run, checkpoint_dir, thresholds=pruning["thresholds"], dataset=dataset, data=data,
                           speed=pruning["speed"], profile=profile, output=output, seed=seed)


def finetune(run: dict[str, Any], base_checkpoint_dir: str, metrics: str, checkpoint_dir: str, mode: str,
             dataset: str, data: dict[str, Any], training: dict[str, Any], calibration_batches: int, profile: str,
             seed: int) -> None:
    finetune_experiment.run(run, base_checkpoint_dir, mode=mode, dataset=dataset, data=data, training=training,
                            profile=profile, calibration_batches=calibration_batches,
                            checkpoint_dir=checkpoint_dir, metrics_csv=metrics, seed=seed)


def finetune_figure(base_metrics: dict[str, list[str]], mode_metrics: list[str], png: str) -> None:
    """Figure 9, one panel per base run: the base runs' metrics by panel title, and the fine-tuning runs'
    metrics (``.../<base>/<mode>/seed<k>/metrics.csv``)."""
    labels = {"bn": "fine-tune with BN", "fused": "fine-tune w/o BN (fused)"}
    titles = {os.path.basename(os.path.dirname(os.path.dirname(paths[0]))): title
              for title, paths in base_metrics.items()}  # run name -> panel title
    curves: dict[str, dict[str, list[str]]] = {title: {} for title in base_metrics}
    for path in mode_metrics:
        mode_dir = os.path.dirname(os.path.dirname(path))
        base, mode = os.path.basename(os.path.dirname(mode_dir)), os.path.basename(mode_dir)
        curves[titles[base]].setdefault(labels[mode], []).append(path)
    figures.finetune(curves, base_metrics, _stem(png, ".png"))


def depth_figure(summaries: list[str], csv: str, png: str) -> None:
    write_csv_atomic(pd.concat([pd.read_csv(path) for path in summaries], ignore_index=True), csv)
    figures.depth_study(csv, _stem(png, ".png"))


def ablation(output: str, ablation: dict[str, Any], profile: str, threads: int) -> None:
    _threads(threads)
    ablation_experiment.run(ablation["base"], ablation["sweeps"], ablation["speed"],
                            input_size=ablation["input_size"], profile=profile, output=output)


def ablation_figure(csv: str, png: str) -> None:
    figures.ablation(csv, _stem(png, ".png"))


def pruning_figure(csv: str, png: str) -> None:
    figures.pruning(csv, _stem(png, ".png"))


def counts(counts_csv: str, comparison_csv: str, table: str) -> None:
    model_counts.run(counts_csv)
    counts_table.build(counts_csv, comparison_csv, table)


def throughput_report(csv: str, table: str, roofline_png: str, predictions_csv: str | None = None) -> None:
    throughput_table.build(csv, table, predictions_csv)
    roofline.plot(csv, _stem(roofline_png, ".png"))


def exactness(output: str, profile: str) -> None:
    exactness_experiment.run(output, profile)


def speed_pairs(output: str, throughput: dict[str, Any], profile: str, threads: int) -> None:
    _threads(threads)
    # Pairs count rounds, not repeats: repeats=1 keeps the recorded context truthful.
    pairs_experiment.run(load_claims(), replace(_throughput_config(throughput), repeats=1),
                         rounds=throughput.get("rounds", 8), max_rounds=throughput.get("max_rounds", 32),
                         time_cap_s=throughput.get("pair_time_cap_s", 300.0),
                         profile=profile, output=output)


def summary(metrics: list[str], runs: dict[str, Any], summary: str, seeds: str) -> None:
    """An accuracy experiment's summary (mean, std, 95 % CI per run) and its per-seed rows."""
    summarize(metrics, runs, summary, seeds)


def accuracy_table(summary: str, paper_table: str, table: str, title: str) -> None:
    paper_tables.accuracy_table(summary, paper_table, _stem(table, ".md"), title)


def structure_table(table: str) -> None:
    paper_tables.structure_table(_stem(table, ".md"))


def mobilenet_table(csv: str, pairs: str, table: str) -> None:
    paper_tables.mobilenet_table([csv], _stem(table, ".md"), pairs)


def claims(results_dir: str, config: dict[str, Any], csv: str, table: str) -> None:
    """Verdicts on every claim of the ledger from this profile's results, as CSV and Markdown."""
    frame = judge(load_claims(), Evidence(results_dir, config), smoke=bool(config.get("smoke", False)))
    write_csv_atomic(frame, csv)
    claims_table.build(csv, table)


def check_datasets(data: dict[str, Any], datasets: list[str]) -> None:
    """Every dataset the run needs is on disk (the data layer's own message names what is missing)."""
    for name in datasets:
        build_datasets(DataConfig.from_mapping(data, name))


STEPS: dict[str, Callable[..., None]] = {step.__name__: step for step in (
    check_config, check_datasets, counts, exactness, throughput, cost_model, throughput_report, speed_pairs,
    ablation,
    summary, mobilenet, gather_seeds, pruning, finetune, accuracy_table, structure_table, mobilenet_table,
    pruning_figure, finetune_figure, depth_figure, ablation_figure, claims)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m replication.workflow_steps",
                                     description="Run one step of the Snakemake workflow.")
    parser.add_argument("step", choices=sorted(STEPS))
    parser.add_argument("arguments", help="the step's keyword arguments, as one JSON object")
    args = parser.parse_args(argv)
    step = STEPS[args.step]
    try:
        kwargs = json.loads(args.arguments)
    except json.JSONDecodeError as error:
        parser.error(f"arguments are not a JSON object: {error}")
    started = time.perf_counter()
    print(f"[workflow step {args.step}] {json.dumps(kwargs, sort_keys=True)[:2000]}", file=sys.stderr, flush=True)
    if args.step in {"check_config", "check_datasets"}:
        try:
            step(**kwargs)
        except (ValueError, DatasetNotFoundError) as error:
            print(str(error), file=sys.stderr)
            return 2
    else:
        step(**kwargs)  # a failure's traceback goes to stderr, which the rule sends to its log
    print(f"[workflow step {args.step}] done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
