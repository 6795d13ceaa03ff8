"""What each workflow rule runs: one function per step, called from a thin ``shell:`` rule as

    python -m replication.workflow_steps <step> '<JSON object of keyword arguments>' > <log> 2>&1

so every job runs in its own process (torch never loads in the Snakemake scheduler) and its output
and traceback land in the rule's log. Each step receives only the config sections it reads: a change
elsewhere in the config does not rerun it. All real work is in ``replication.experiments`` (results
CSVs) and ``replication.report`` (tables and figures).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
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

RUN_NAME = re.compile(r"[A-Za-z0-9_]+")  # the `run` and `base` wildcards' pattern (workflow/rules/common.smk)
_LAUNCHER_WORD = re.compile(r"[A-Za-z0-9_.:=/,-]+")  # nothing a shell would read as more than a word


def check_launcher(launcher: Any) -> str | None:
    """The problem with ``training.launcher``, or None. It is pasted into each training job's shell
    command, so it must be ``python`` or ``torchrun`` with options torchrun itself accepts."""
    words = launcher.split() if isinstance(launcher, str) else []
    if words == ["python"]:
        return None
    if not words or words[0] != "torchrun" or not all(_LAUNCHER_WORD.fullmatch(word) for word in words[1:]):
        return (f"{launcher!r} is not a launcher: use 'python' or 'torchrun' with its options "
                "(e.g. 'torchrun --nproc_per_node 4')")
    from torch.distributed.run import get_args_parser

    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            parsed = get_args_parser().parse_args([*words[1:], "TRAINING_SCRIPT"])
    except SystemExit:
        lines = [line for line in errors.getvalue().splitlines() if line.strip()]
        reason = lines[-1].partition("error: ")[2] or lines[-1] if lines else "unknown error"
        return f"{launcher!r}: torchrun refuses its options ({reason})"
    if parsed.training_script != "TRAINING_SCRIPT":
        return f"{launcher!r}: {parsed.training_script!r} is not a torchrun option (the workflow names the script)"
    return None


def _processes(launcher: str) -> int:
    words = launcher.replace("=", " ").split()
    for flag, value in zip(words, words[1:]):
        if flag in ("--nproc_per_node", "--nproc-per-node") and value.isdigit():
            return int(value)
    return 1


def _recipes(config: dict[str, Any]) -> list[tuple[str, Any]]:
    """(key, recipe) of every training the workflow may run: each run with the training preset (and the
    ImageNet one when ImageNet is on), and each fine-tuning base with the fine-tuning preset."""
    from .train import get_preset

    training = config["training"]
    recipes: list[tuple[str, Any]] = []

    def add(key: str, preset: str, *overrides: dict[str, Any]) -> None:
        merged = {k: v for layer in overrides for k, v in (layer or {}).items()}
        try:
            recipes.append((key, get_preset(preset, **merged)))
        except ValueError as error:
            recipes.append((key, error))

    presets = [training["preset"]] + ([training.get("imagenet_preset", "imagenet_repvgg")]
                                      if config.get("imagenet") else [])
    for run, spec in config["runs"].items():
        for preset in dict.fromkeys([spec["preset"]] if spec.get("preset") else presets):
            add(f"runs.{run}", preset, training.get("overrides", {}), spec.get("overrides", {}))
    for base in config["experiments"]["finetune"]["bases"]:
        add(f"experiments.finetune.bases ({base})", training.get("finetune_preset", "cifar_finetune"),
            training.get("overrides", {}), training.get("finetune_overrides", {}))
    return recipes


def check_config(config: dict[str, Any]) -> None:
    """What the schema cannot see, checked before any job starts: every model name can be built with its
    constructor arguments, every run an experiment names is defined and has a name the workflow's
    paths accept, the launcher is one the workflow can run, and every training trains at least one
    step per epoch. Raises ValueError listing each problem with its key."""
    from .data.specs import dataset_spec
    from .experiments.ablation import FACTORS, variant_kwargs

    problems = []
    shapes: dict[int, tuple[int, str]] = {}  # in_chans -> (num_classes, dataset): what a constructor is given
    for name in config["datasets"]:
        shapes.setdefault(dataset_spec(name).in_chans, (dataset_spec(name).num_classes, name))
    for run, spec in config["runs"].items():
        if not RUN_NAME.fullmatch(run):
            suggestion = re.sub(r"[^A-Za-z0-9_]", "_", run)
            problems.append(f"runs.{run}: a run name may hold letters, digits and '_' only (it is a path "
                            f"wildcard matching {RUN_NAME.pattern}); rename it, e.g. {suggestion!r}")
        try:
            zoo.check_name(spec["model"])
        except zoo.UnknownModelError as error:
            problems.append(f"runs.{run}.model: {error}")
            continue
        for in_chans, (num_classes, dataset) in shapes.items():
            try:
                zoo.check_kwargs(spec["model"], spec.get("model_kwargs") or {}, where=f"runs.{run}.model_kwargs",
                                 reserved=("num_classes", "in_chans"), num_classes=num_classes, in_chans=in_chans)
            except (zoo.ModelKwargsError, ValueError) as error:
                problems.append(f"{error} (on {dataset})")
                break
    base = config["ablation"]["base"]
    try:
        zoo.check_name(base["model"])
    except zoo.UnknownModelError as error:
        problems.append(f"ablation.base.model: {error}")
    else:
        variants = [("ablation.base.model_kwargs", base.get("model_kwargs") or {})]
        variants += [(f"ablation.sweeps.{factor}[{index}] ({value})", variant_kwargs(base, factor, value))
                     for factor in FACTORS for index, value in enumerate(config["ablation"]["sweeps"].get(factor, []))
                     if factor != "batch_size"]
        for where, kwargs in variants:
            try:
                zoo.check_kwargs(base["model"], kwargs, where=where, reserved=("num_classes",), num_classes=10)
            except (zoo.ModelKwargsError, ValueError) as error:
                problems.append(str(error))
                break
    launcher = config["training"].get("launcher", "python")
    launcher_problem = check_launcher(launcher)
    if launcher_problem:
        problems.append(f"training.launcher: {launcher_problem}")
    subset = config["data"].get("train_subset")
    world = _processes(launcher) if not launcher_problem else 1
    recipe_problems: dict[str, list[str]] = {}  # one line per problem, naming the keys it concerns
    for key, recipe in _recipes(config):
        if isinstance(recipe, ValueError):
            recipe_problems.setdefault(str(recipe), []).append(key)
        elif subset and (subset // world) // max(recipe.batch_size // world, 1) < 1:
            recipe_problems.setdefault(f"data.train_subset: {subset} images are fewer than one batch of "
                                       f"{recipe.batch_size}, so an epoch would train no step", []).append(key)
    for problem, keys in recipe_problems.items():
        shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
        problems.append(f"{problem} (batch_size of {shown})" if problem.startswith("data.") else f"{shown}: {problem}")
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


def _threads(threads: int, configured: int | None = None) -> None:
    """Timing threads: the config's ``threads`` where it sets one (1 keeps a timing steady beside other
    processes), else every core the rule was given."""
    torch.set_num_threads(max(1, min(configured or threads, os.cpu_count() or 1)))


def _throughput_config(speed: dict[str, Any]) -> ThroughputConfig:
    """The measurement settings of the config's ``throughput`` section."""
    return ThroughputConfig(batch_size=speed["batch_size"], warmup=speed["warmup"], iters=speed["iters"],
                            repeats=speed["repeats"], device=speed.get("device", "cpu"),
                            dtype=speed.get("dtype", "float32"), channels_last=speed.get("channels_last", False),
                            clock=speed.get("clock", "wall"), statistic=speed.get("statistic", "median"),
                            interleave=speed.get("interleave", 1))


def throughput(output: str, throughput: dict[str, Any], profile: str, threads: int) -> None:
    _threads(threads, throughput.get("threads"))
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
    _threads(threads, pruning["speed"].get("threads"))
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


def depth_figure(summaries: list[str], csv: str, png: str, seeds: list[str] | None = None) -> None:
    """Figure 5 from the depth study's summaries and, to show every seed, their per-seed rows."""
    write_csv_atomic(pd.concat([pd.read_csv(path) for path in summaries], ignore_index=True), csv)
    figures.depth_study(csv, _stem(png, ".png"), seeds)


def ablation(output: str, ablation: dict[str, Any], profile: str, threads: int) -> None:
    _threads(threads, ablation["speed"].get("threads"))
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
    _threads(threads, throughput.get("threads"))
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


def claims(results_dir: str, config: dict[str, Any], csv: str, table: str, gpu_dir: str | None = None) -> None:
    """Verdicts on every claim of the ledger from this profile's results (and the GPU check's rows in
    ``gpu_dir``, where there are any), as CSV and Markdown."""
    frame = judge(load_claims(), Evidence(results_dir, config, gpu_dir=gpu_dir), smoke=bool(config.get("smoke", False)))
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
