"""The results layout, stated once: where the workflow writes each results file and where the verdicts
read it. Standard library only, so the Snakefile imports it without loading torch.

A workflow configuration writes everything under folders named by its ``results_name`` (``embedded``,
``evidence``, ``paper``, ``ci``): ``results/<name>/`` (CSVs), ``figures/<name>/`` (tables and figures),
``runs/<name>/`` (checkpoints), ``logs/<name>/`` and ``benchmarks/<name>/`` (Snakemake's per-rule
timings). The paths below are relative to ``results/<name>/``; a function's arguments may be
Snakemake wildcards (``summary_csv("{experiment}", "{dataset}")``). Hand-run commands write under
``results/manual/`` (:data:`MANUAL`), which no configuration may be named after.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Top-level folders, each holding one folder per results_name.
RESULTS_ROOT = "results"
FIGURES_ROOT = "figures"
RUNS_ROOT = "runs"
LOGS_ROOT = "logs"
BENCHMARKS_ROOT = "benchmarks"

# Hand-run outputs (python -m replication counts / throughput / cost-model, scripts/inspect_timm.py,
# scripts/speed-stability.sh, the benchmarks), apart from every workflow configuration's folder.
MANUAL = f"{RESULTS_ROOT}/manual"
MANUAL_COUNTS = f"{MANUAL}/counts"
MANUAL_THROUGHPUT = f"{MANUAL}/throughput/throughput.csv"
MANUAL_PREDICTED = f"{MANUAL}/throughput/predicted.csv"
MANUAL_INSPECT = f"{MANUAL}/inspect/timm_models.csv"
MANUAL_BENCHMARKS = f"{MANUAL}/benchmarks"
GPU_CHECK_DIR = f"{MANUAL}/throughput"  # scripts/gpu-check.sh writes gpu-<device>.csv / .md here
RESERVED_NAMES = ("manual",)

# Results of one configuration, relative to results/<name>/.
MODEL_COUNTS = "counts/model_counts.csv"
COUNTS_VS_PAPER = "counts/counts_vs_paper.csv"
EXACTNESS = "exactness/exactness.csv"
SPEED_PAIRS = "speed/pairs.csv"
THROUGHPUT = "throughput/throughput.csv"
PREDICTED = "throughput/predicted.csv"
ABLATION_SPEED = "ablation/speed.csv"
DEPTH_ALL_DATASETS = "depth_study/all_datasets.csv"
CLAIMS = "claims.csv"

# The training experiments whose runs are summarised over seeds (summary.csv, seeds.csv).
ACCURACY_EXPERIMENTS = ("sota", "depth_study", "table3")
# The experiments gathered from one CSV per seed into one CSV per dataset.
PER_SEED_EXPERIMENTS = ("mobilenet", "pruning")


def results_name(config: Mapping[str, Any]) -> str:
    """The name of a configuration's folders (its ``results_name`` key)."""
    return str(config["results_name"])


def results_dir(name: str) -> str:
    return f"{RESULTS_ROOT}/{name}"


def figures_dir(name: str) -> str:
    return f"{FIGURES_ROOT}/{name}"


def runs_dir(name: str) -> str:
    return f"{RUNS_ROOT}/{name}"


def logs_dir(name: str) -> str:
    return f"{LOGS_ROOT}/{name}"


def benchmarks_dir(name: str) -> str:
    return f"{BENCHMARKS_ROOT}/{name}"


def train_metrics(dataset: str, run: str, seed: int | str) -> str:
    """One training run's metrics (a copy of its run folder's metrics.csv)."""
    return f"train/{dataset}/{run}/seed{seed}/metrics.csv"


def checkpoint_dir(dataset: str, run: str, seed: int | str) -> str:
    """A training run's folder under runs/<name>/ (checkpoint.pt, metrics.csv): not a workflow output, so a
    killed job's rerun resumes from it."""
    return f"{dataset}/{run}/seed{seed}"


def summary_csv(experiment: str, dataset: str) -> str:
    """One row per run of an accuracy experiment: mean and 95 % CI over seeds."""
    return f"{experiment}/{dataset}/summary.csv"


def seeds_csv(experiment: str, dataset: str) -> str:
    """One row per run and seed of an accuracy experiment."""
    return f"{experiment}/{dataset}/seeds.csv"


def per_seed_csv(experiment: str, dataset: str, seed: int | str) -> str:
    """One seed's rows of a per-seed experiment (mobilenet, pruning)."""
    return f"{experiment}/{dataset}/seed{seed}.csv"


def gathered_csv(experiment: str, dataset: str) -> str:
    """Every seed's rows of a per-seed experiment (mobilenet, pruning)."""
    return f"{experiment}/{dataset}.csv"


def mobilenet_csv(dataset: str) -> str:
    """Table 2: MobileNetV2, RMNetV1 and MobileNetV1, every seed."""
    return gathered_csv("mobilenet", dataset)


def pruning_csv(dataset: str) -> str:
    """Figure 6: the pruning sweep, every seed."""
    return gathered_csv("pruning", dataset)


def finetune_dir(dataset: str, base: str) -> str:
    """Figure 9: the fine-tuning runs of one base network (``<mode>/seed<k>/metrics.csv`` below it)."""
    return f"finetune/{dataset}/{base}"


def finetune_metrics(dataset: str, base: str, mode: str, seed: int | str) -> str:
    return f"{finetune_dir(dataset, base)}/{mode}/seed{seed}/metrics.csv"


def seeds(config: Mapping[str, Any]) -> list[int]:
    """The training seeds of a configuration (``training.seeds``, else the one ``training.seed``)."""
    training = config["training"]
    return list(training.get("seeds") or [training.get("seed", 0)])


def verdict_datasets(config: Mapping[str, Any]) -> list[str]:
    """The datasets the verdicts look at: the configuration's, and ImageNet where it runs ImageNet."""
    return [*config["datasets"], *(["imagenet"] if config.get("imagenet") else [])]


def verdict_inputs(config: Mapping[str, Any]) -> list[str]:
    """Every results file (relative to results/<name>/) the verdicts of ``replication.claims`` read for
    this configuration. A file that is missing reads as "not run", so each must be a workflow output: a
    test dry-runs the workflow with these as targets."""
    datasets, finetune = verdict_datasets(config), config["experiments"]["finetune"]
    paths = [EXACTNESS, COUNTS_VS_PAPER, SPEED_PAIRS, ABLATION_SPEED]
    for experiment in ACCURACY_EXPERIMENTS:
        for dataset in datasets:
            paths += [summary_csv(experiment, dataset), seeds_csv(experiment, dataset)]
    for dataset in config["datasets"]:
        paths += [mobilenet_csv(dataset), pruning_csv(dataset)]
        paths += [finetune_metrics(dataset, base, mode, seed) for base in finetune["bases"]
                  for mode in finetune["modes"] for seed in seeds(config)]
    return paths
