"""Evidence that checks itself: rerun a sample of a profile's committed results and report drift.

    python -m replication verify-evidence                      # a sample that fits in 300 s (the default)
    python -m replication verify-evidence --budget-seconds 900 --seed 3
    python -m replication verify-evidence --sample 4           # four checks, cheapest first
    python -m replication verify-evidence --all                # every committed run and pair

What is checked (each a *check*, with an estimated cost from the committed rows' own timings):

- ``train``: ``results/<profile>/train/<dataset>/<run>/seed<k>/metrics.csv`` is retrained into a temporary
  folder with the workflow's own entry point and arguments (``python -m replication.experiments
  train --run-config ... --threads 1 --seed k``, as rule ``train`` runs it, the payload built from the
  profile's config as ``training_payload`` in ``workflow/rules/common.smk`` builds it). Its loss and
  accuracy columns (``train_loss``, ``train_top1``, ``test_loss``, ``top1``, ``top5``) must be
  bit-identical: the CSV text of each column is compared, every epoch. The recipe columns the rows carry
  (model, preset, epochs, seed, batch, subsets, image size, lr, ...) must be identical too: a mismatch
  means the committed rows did not come from the committed config.
- ``finetune``, ``mobilenet``, ``pruning``: the per-seed CSVs made from trained checkpoints. Their base
  trainings are rerun first (shared with any ``train`` check of the same run), then the workflow step
  (``python -m replication.workflow_steps <step> '<json>'``) with the rule's arguments; the accuracy
  columns must be bit-identical, pruning's speed-ups consistent with their committed CI (below).
- ``speed``: a row of ``speed/pairs.csv`` is re-measured with :func:`~replication.measure.paired.measure_pair`
  (or ``measure_pair_in_workers`` for rows with ``workers`` > 1) under the settings the row records
  (batch, input size, threads, dtype, channels_last, compile, warm-up, iters; the allocator pinned as
  ``cpu_allocator`` says) and as many rounds as the committed ratio rests on. ``ablation``: a row of
  ``ablation/speed.csv``, the same way. The rerun's 95 % CI must reach the committed 95 % CI, give or
  take the ledger's 5 % resolution of a speed ratio (below). Timing
  uses ``time.perf_counter`` (measure_pair's default clock; rows do not record the clock), the threads
  are the row's ``threads``.

A speed ratio is only comparable on the CPU / GPU model it was taken on, with the same torch, threads
and allocator state: where this machine differs from the row, the check says ``n/a`` and why instead
of timing (``--strict`` makes that a failure). Both the committed ratio and the rerun are noisy: a rerun
median lands inside the committed CI only about 83 % of the time even with nothing changed (and an idle
CI rerun of a pair measured 0.798 against [0.799, 0.863]). Both CIs are also within-run CIs: they leave
out the shift between sessions (six idle reruns of that pair in two later sessions gave medians of
0.779-0.803, with CIs 0.004-0.014 wide where recorded). So drift means the rerun's CI misses the
committed CI by more than ``SPEED_RESOLUTION`` (5 %) of the committed ratio, the resolution below which
the ledger calls no speed difference (measure_pair's ``tolerance``); a miss inside it passes and the
note says by how much. A pair that drifts is measured again (``--retries``, default 1) and passes if any
attempt does.

Exit status: 0 when every check is ``ok`` (or ``n/a`` without ``--strict``), 1 on any ``DRIFT`` or
``ERROR``, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# The columns a rerun must reproduce bit for bit, and those that say how the run was made.
LOSS_ACCURACY = ("train_loss", "train_top1", "test_loss", "top1", "top5")
RECIPE = ("model", "dataset", "preset", "profile", "device", "world_size", "global_batch", "epochs", "seed",
          "sparsity", "train_samples", "test_samples", "image_size", "num_classes", "in_chans", "amp", "epoch", "lr")
MOBILENET_EXACT = ("top1", "top5", "params", "macs", "test_samples")
PRUNING_EXACT = ("top1", "top1_unpruned", "params", "params_original", "pruned_params_ratio", "macs",
                 "masked_channels", "total_channels", "test_samples")
# A speed row is comparable only where these settings equal the row's (device_name: the CPU / GPU model).
REQUIRED_SETTINGS = ("device_name", "torch_version", "threads", "cpu_allocator")
SPEED_SETTINGS = ("device_name", "torch_version", "threads", "dtype", "channels_last", "compile", "batch_size",
                  "input_size", "warmup", "iters", "cpu_allocator")
TRAIN_THREADS = 1          # rule train: `threads: 1`, passed as --threads {threads}
STARTUP_S = 8.0            # a fresh interpreter importing torch and the suite
EVAL_SHARE = 0.25          # evaluation after each epoch, on top of the recorded training `seconds`
DEFAULT_BUDGET_S = 240.0   # estimated from the rows' own timings on a quiet machine: CI's sample, under 5 min
# A sample (no --all, no --kind) leaves pruning out: its rerun times 12 pairs with adaptive rounds, so its
# time is not bounded by its rows' record.
SAMPLE_KINDS = ("train", "speed", "ablation", "finetune", "mobilenet")
OK, DRIFT, NA, ERROR = "ok", "DRIFT", "n/a", "ERROR"


@dataclass
class Finding:
    """One line of the report."""

    run: str
    what: str
    committed: str
    rerun: str
    verdict: str
    note: str = ""


@dataclass(frozen=True)
class TrainKey:
    dataset: str
    run: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.run}/seed{self.seed}"


@dataclass
class Check:
    kind: str                                  # train | finetune | mobilenet | pruning | speed | ablation
    name: str
    cost_s: float                              # estimated seconds, not counting the trainings in `needs`
    needs: tuple[TrainKey, ...]                # trainings it reruns first (shared between checks)
    execute: Callable[[Context], list[Finding]]
    comparable: bool = True                    # False: a timing taken elsewhere (reported n/a, not timed)


@dataclass
class Context:
    """Where a verification runs: the profile's config and results, a scratch folder, the trainings
    already redone (their checkpoint folders), the retry count and an optional progress printer."""

    config: dict[str, Any]
    results: Path
    scratch: Path
    retries: int = 1
    log: Callable[[str], None] = lambda message: None
    trained: dict[TrainKey, Path] = field(default_factory=dict)
    train_costs: dict[TrainKey, float] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def profile(self) -> str:
        return str(self.config["results_name"])

    def train_metrics(self, key: TrainKey) -> Path:
        return self.results / "train" / key.dataset / key.run / f"seed{key.seed}" / "metrics.csv"


# --- config ----------------------------------------------------------------------------------------

def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Snakemake's --configfile overlay: nested mappings merge, everything else replaces."""
    merged = dict(base)
    for key, value in overlay.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


def load_config(paths: Sequence[str | os.PathLike]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for path in paths:
        with open(path) as handle:
            config = _merge(config, yaml.safe_load(handle) or {})
    if "results_name" not in config:
        raise ValueError(f"{', '.join(map(str, paths))}: no `results_name` key")
    return config


def training_payload(config: dict[str, Any], dataset: str, run: str) -> dict[str, Any]:
    """The run config rule ``train`` passes (``training_run_config`` in workflow/rules/common.smk)."""
    if run not in config.get("runs", {}):
        raise ValueError(f"run {run!r} is not defined under `runs` of the {config['results_name']} config")
    training = dict(config["training"])
    if dataset == "imagenet":
        training["preset"] = training.get("imagenet_preset", "imagenet_repvgg")
    return {"run": config["runs"][run], "data": config["data"], "training": training}


# --- reading committed rows as text ------------------------------------------------------------------

def read_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    """A CSV's rows with every cell as the text written (no float parsing: bit-identity is textual)."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _float(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def _seconds(path: Path) -> float:
    """The recorded training seconds of a metrics file (NaN when it has none)."""
    values = [_float(row.get("seconds")) for row in read_rows(path)] if path.exists() else []
    values = [v for v in values if v == v]
    return sum(values) if values else float("nan")


def _run_cost(seconds: float) -> float:
    return STARTUP_S + (1 + EVAL_SHARE) * seconds if seconds == seconds else 600.0


def compare_columns(committed: list[dict[str, str]], rerun: list[dict[str, str]], columns: Iterable[str],
                    run: str, key: Callable[[dict[str, str]], str] = lambda row: row.get("epoch", "")) -> list[Finding]:
    """One finding per column: ``ok`` when the column's text is identical in every row (matched in order),
    else ``DRIFT`` showing the first differing row (by ``key``)."""
    findings = []
    for column in columns:
        if not any(column in row for row in committed):
            continue
        if len(committed) != len(rerun):
            findings.append(Finding(run, column, f"{len(committed)} rows", f"{len(rerun)} rows", DRIFT))
            continue
        first = next(((a, b) for a, b in zip(committed, rerun) if a.get(column) != b.get(column)), None)
        if first is None:
            last = committed[-1].get(column, "") if committed else ""
            findings.append(Finding(run, column, last, last, OK, f"{len(committed)} rows identical"))
        else:
            a, b = first
            findings.append(Finding(run, column, str(a.get(column)), str(b.get(column)), DRIFT,
                                    f"first difference at {key(a)}"))
    return findings


# --- reruns ------------------------------------------------------------------------------------------

def _subprocess(ctx: Context, args: list[str], log_path: Path, env_extra: dict[str, str] | None = None) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **ctx.env, **(env_extra or {})}
    with open(log_path, "w") as log:
        done = subprocess.run([sys.executable, *args], stdout=log, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        tail = log_path.read_text().strip().splitlines()[-5:]
        raise RuntimeError(f"`{' '.join(args[:3])} ...` exited {done.returncode}: " + " | ".join(tail))


def ensure_trained(ctx: Context, key: TrainKey) -> Path:
    """Retrain ``key`` into the scratch folder the way rule ``train`` does (once per verification);
    returns its checkpoint folder, which holds the rerun's ``metrics.csv``."""
    if key in ctx.trained:
        return ctx.trained[key]
    checkpoint_dir = ctx.scratch / "runs" / key.dataset / key.run / f"seed{key.seed}"
    metrics = ctx.scratch / "results" / "train" / key.dataset / key.run / f"seed{key.seed}" / "metrics.csv"
    ctx.log(f"training {key.name} (threads {TRAIN_THREADS}) ...")
    started = time.perf_counter()
    _subprocess(ctx, ["-m", "replication", "train",
                      "--run-config", json.dumps(training_payload(ctx.config, key.dataset, key.run)),
                      "--profile", str(ctx.config["results_name"]),
                      "--dataset", key.dataset, "--metrics", str(metrics), "--output-dir", str(checkpoint_dir),
                      "--threads", str(TRAIN_THREADS), "--seed", str(key.seed)],
                ctx.scratch / "logs" / f"train_{key.dataset}_{key.run}_seed{key.seed}.log")
    ctx.log(f"trained {key.name} in {time.perf_counter() - started:.0f} s")
    ctx.trained[key] = checkpoint_dir
    return checkpoint_dir


def _step(ctx: Context, step: str, arguments: dict[str, Any], log_name: str) -> None:
    # Snakemake runs a job with OMP_NUM_THREADS / MKL_NUM_THREADS set to the rule's threads (1 for
    # finetune and mobilenet, the `threads` argument for pruning); a CPU result is bit-identical only
    # on the thread count it was made with.
    threads = str(arguments.get("threads", 1))
    _subprocess(ctx, ["-m", "replication.workflow_steps", step, json.dumps(arguments, sort_keys=True)],
                ctx.scratch / "logs" / f"{log_name}.log", {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads})


def _train_findings(ctx: Context, key: TrainKey) -> list[Finding]:
    committed_path = ctx.train_metrics(key)
    checkpoint_dir = ensure_trained(ctx, key)
    return compare_metrics(read_rows(committed_path), read_rows(checkpoint_dir / "metrics.csv"), f"train/{key.name}")


def compare_metrics(committed: list[dict[str, str]], rerun: list[dict[str, str]], run: str) -> list[Finding]:
    """A training run's metrics rows: the recipe (one finding), torch's version, then each loss and
    accuracy column (bit-identical text)."""
    findings = []
    recipe = [c for c in RECIPE if committed and c in committed[0]]
    differing = [c for c in recipe if [r.get(c) for r in committed] != [r.get(c) for r in rerun]]
    if differing or len(committed) != len(rerun):
        column = differing[0] if differing else "epoch"
        findings.append(Finding(run, "recipe", ", ".join(f"{c}={committed[-1].get(c)}" for c in differing[:3])
                                or f"{len(committed)} epochs",
                                ", ".join(f"{c}={rerun[-1].get(c) if rerun else ''}" for c in differing[:3])
                                or f"{len(rerun)} epochs", DRIFT,
                                f"the committed rows were not made with this config ({column} differs)"))
    else:
        findings.append(Finding(run, "recipe", f"{committed[-1].get('model')}, {committed[-1].get('epochs')} epochs",
                                "same", OK, f"{len(recipe)} recipe columns identical"))
    committed_torch = committed[-1].get("torch_version", "") if committed else ""
    rerun_torch = rerun[-1].get("torch_version", "") if rerun else ""
    note = "" if committed_torch == rerun_torch else \
        f"torch {committed_torch} vs {rerun_torch}: bit-identity not expected"
    for finding in compare_columns(committed, rerun, LOSS_ACCURACY, run):
        finding.note = "; ".join(filter(None, [finding.note, note]))
        findings.append(finding)
    return findings


def _finetune_findings(ctx: Context, path: Path) -> list[Finding]:
    seed_dir = path.parent
    mode, base, dataset = seed_dir.parent.name, seed_dir.parent.parent.name, seed_dir.parent.parent.parent.name
    seed = int(seed_dir.name.removeprefix("seed"))
    base_dir = ensure_trained(ctx, TrainKey(dataset, base, seed))
    out = ctx.scratch / "results" / "finetune" / dataset / base / mode / f"seed{seed}" / "metrics.csv"
    experiments = ctx.config["experiments"]
    _step(ctx, "finetune", {
        "run": ctx.config["runs"][base], "base_checkpoint_dir": str(base_dir),
        "checkpoint_dir": str(ctx.scratch / "runs" / dataset / f"finetune_{base}_{mode}" / f"seed{seed}"),
        "metrics": str(out), "mode": mode, "dataset": dataset, "data": ctx.config["data"],
        "training": ctx.config["training"],
        "calibration_batches": experiments.get("finetune", {}).get("calibration_batches", 8),
        "profile": ctx.profile, "seed": seed}, f"finetune_{dataset}_{base}_{mode}_seed{seed}")
    return compare_metrics(read_rows(path), read_rows(out), f"finetune/{dataset}/{base}/{mode}/seed{seed}")


def _mobilenet_findings(ctx: Context, path: Path) -> list[Finding]:
    dataset, seed = path.parent.name, int(path.stem.removeprefix("seed"))
    names = ctx.config["experiments"]["mobilenet"]
    v2, v1 = (ensure_trained(ctx, TrainKey(dataset, names[side], seed)) for side in ("v2", "v1"))
    out = ctx.scratch / "results" / "mobilenet" / dataset / path.name
    _step(ctx, "mobilenet", {"v2_run": ctx.config["runs"][names["v2"]], "v2_checkpoint_dir": str(v2),
                             "v1_run": ctx.config["runs"][names["v1"]], "v1_checkpoint_dir": str(v1),
                             "output": str(out), "dataset": dataset, "data": ctx.config["data"],
                             "profile": ctx.profile, "seed": seed}, f"mobilenet_{dataset}_seed{seed}")
    return compare_columns(read_rows(path), read_rows(out), MOBILENET_EXACT, f"mobilenet/{dataset}/seed{seed}",
                           key=lambda row: row.get("backbone", ""))


def _pruning_findings(ctx: Context, path: Path) -> list[Finding]:
    dataset, seed = path.parent.name, int(path.stem.removeprefix("seed"))
    pruning = ctx.config["experiments"]["pruning"]
    base = ensure_trained(ctx, TrainKey(dataset, pruning["run"], seed))
    committed = read_rows(path)
    out = ctx.scratch / "results" / "pruning" / dataset / path.name
    threads = int(_float(committed[0].get("threads"))) if committed and committed[0].get("threads") else 1
    _step(ctx, "pruning", {"run": ctx.config["runs"][pruning["run"]], "checkpoint_dir": str(base),
                           "output": str(out), "dataset": dataset, "data": ctx.config["data"], "pruning": pruning,
                           "profile": ctx.profile, "threads": threads, "seed": seed}, f"pruning_{dataset}_seed{seed}")
    rerun = read_rows(out)
    name = f"pruning/{dataset}/seed{seed}"
    findings = compare_columns(committed, rerun, PRUNING_EXACT, name,
                               key=lambda row: f"{row.get('method')} at {row.get('threshold')}")
    prefix = "speedup_vs_unpruned_ratio"
    for old, new in zip(committed, rerun):
        if prefix not in old:
            break
        label = f"speed-up {old.get('method', '')} at {old.get('threshold')}"
        missing = [key for key in REQUIRED_SETTINGS if not old.get(key)]
        comparable, why = (False, f"the row does not record {', '.join(missing)}") if missing \
            else _speed_comparable(old, new)
        value, ci_low, ci_high = (_float(new.get(key)) for key in (prefix, f"{prefix}_ci_low", f"{prefix}_ci_high"))
        attempt = (value, ci_low, ci_high) if ci_low == ci_low and ci_high == ci_high else (value, value, value)
        findings.append(_ratio_finding(name, label, old, [attempt], prefix, comparable, why))
    return findings


# --- speed pairs ---------------------------------------------------------------------------------------

def _bool(text: Any) -> bool:
    return str(text).strip().lower() in ("true", "1", "yes")


def _speed_comparable(committed: dict[str, Any], here: dict[str, Any]) -> tuple[bool, str]:
    differing = [f"{key} {committed.get(key)!s} vs {here.get(key)!s} here" for key in SPEED_SETTINGS
                 if key in committed and key in here and str(committed[key]) != str(here[key])]
    return (not differing, "; ".join(differing))


Attempt = tuple[float, float, float]  # a rerun's ratio and its own 95 % CI (low, high)

# measure_pair's default tolerance: a pair whose CI is wider than +-5 % of its ratio is unstable, so the
# ledger does not resolve speed differences smaller than this (tests hold the two equal).
SPEED_RESOLUTION = 0.05


def _miss(committed: dict[str, Any], prefix: str, attempt: Attempt) -> float:
    """How far ``attempt``'s CI misses the committed CI, as a fraction of the committed ratio (0 when they
    overlap; NaN when the committed row has no CI)."""
    low, high = _float(committed.get(f"{prefix}_ci_low")), _float(committed.get(f"{prefix}_ci_high"))
    _, a, b = attempt
    return max(low - b, a - high, 0.0) / _float(committed.get(prefix)) if low == low and high == high else math.nan


def _ratio_finding(run: str, what: str, committed: dict[str, Any], attempts: list[Attempt], prefix: str,
                   comparable: bool = True, why: str = "") -> Finding:
    """``ok`` when some attempt's 95 % CI comes within ``SPEED_RESOLUTION`` of the committed ratio of the
    committed CI: both are noisy measurements of one ratio, and both CIs are within-run CIs that leave out
    the shift between sessions, so a rerun is not held to the committed CI alone (a rerun without a CI is
    a point). An ``ok`` that needed the margin says by how much it missed the committed CI."""
    low, high = _float(committed.get(f"{prefix}_ci_low")), _float(committed.get(f"{prefix}_ci_high"))
    ratio = _float(committed.get(prefix))
    shown = f"{ratio:.3f} [{low:.3f}, {high:.3f}]"
    rerun = ", ".join(f"{value:.3f} [{a:.3f}, {b:.3f}]" if a != b else f"{value:.3f}" for value, a, b in attempts)
    if not comparable:
        return Finding(run, what, shown, rerun or "not timed", NA, f"not comparable: {why}")
    if not (low == low and high == high):
        return Finding(run, what, shown, rerun, NA, "the committed row has no CI")
    gap = min(_miss(committed, prefix, attempt) for attempt in attempts)  # the nearest attempt's miss
    notes = [] if len(attempts) == 1 else [f"{len(attempts)} attempts"]
    if 0 < gap <= SPEED_RESOLUTION:
        notes.append(f"misses the committed CI by {gap:.1%} of the ratio, within the {SPEED_RESOLUTION:.0%} "
                     f"resolution")
    return Finding(run, what, shown, rerun, OK if gap <= SPEED_RESOLUTION else DRIFT, "; ".join(notes))


def _throughput_config(row: dict[str, str]) -> Any:
    """The measurement settings a speed row records."""
    from .measure.throughput import ThroughputConfig

    size = tuple(int(v) for v in row["input_size"].split("x"))
    return ThroughputConfig(batch_size=int(_float(row["batch_size"])), input_size=size,  # type: ignore[arg-type]
                            warmup=int(_float(row["warmup"])), iters=int(_float(row["iters"])), repeats=1,
                            device=row.get("device") or "cpu", dtype=row.get("dtype") or "float32",
                            channels_last=_bool(row.get("channels_last")), compile=_bool(row.get("compile")),
                            compile_backend=row.get("compile_backend") or "inductor",
                            threads=int(_float(row["threads"])),
                            pin_allocator=row.get("cpu_allocator", "glibc pinned") != "glibc dynamic")


def _here(config: Any) -> dict[str, str]:
    """This machine's values of SPEED_SETTINGS under ``config`` (environment() pins the allocator as the
    measurement would, and reads threads from torch, so set them first)."""
    import torch

    from .measure.throughput import environment

    if config.threads > (os.cpu_count() or 1):
        return {"threads": f"{os.cpu_count()} cores"}
    torch.set_num_threads(config.threads)
    return {key: str(value) for key, value in environment(config).items()}


def _measure(build_a: Callable[[], Any], build_b: Callable[[], Any], config: Any, rounds: int, workers: int) -> Any:
    """One fresh measurement of the pair with the committed ratio's number of rounds (no adaptive
    doubling: the rerun costs what the committed measurement cost, busy machine or not)."""
    from .measure.paired import measure_pair, measure_pair_in_workers

    if workers > 1:
        return measure_pair_in_workers(build_a, build_b, config, workers=workers, rounds=max(2, rounds // workers))
    return measure_pair(build_a(), build_b(), config, rounds=rounds, max_rounds=rounds)


def _speed_findings(ctx: Context, row: dict[str, str], name: str, build_a: Callable[[], Any],
                    build_b: Callable[[], Any], prefix: str, rounds_column: str = "rounds") -> list[Finding]:
    missing = [key for key in REQUIRED_SETTINGS if not row.get(key)]
    if missing:
        return [_ratio_finding(name, "ratio", row, [], prefix, False,
                               f"the row does not record {', '.join(missing)} (taken before they were recorded)")]
    config = _throughput_config(row)
    comparable, why = _speed_comparable(row, _here(config))
    if not comparable:
        return [_ratio_finding(name, "ratio", row, [], prefix, False, why)]
    workers = int(_float(row.get("workers"))) if _float(row.get("workers")) == _float(row.get("workers")) else 1
    rounds = int(_float(row.get(rounds_column))) if _float(row.get(rounds_column)) >= 2 else 8
    pairs, attempts = [], []
    for _ in range(1 + max(0, ctx.retries)):
        pairs.append(_measure(build_a, build_b, config, rounds, workers))
        attempts.append((pairs[-1].ratio, pairs[-1].ci_low, pairs[-1].ci_high))
        if _miss(row, prefix, attempts[-1]) <= SPEED_RESOLUTION:  # the rule _ratio_finding judges by
            break
    finding = _ratio_finding(name, "ratio", row, attempts, prefix)
    busy = [pair.other_cpu for pair in pairs if pair.busy]
    if busy:
        finding.note = "; ".join(filter(None, [finding.note, f"machine busy (other processes took up to "
                                                             f"{100 * max(busy):.0f} % of the CPU)"]))
    return [finding]


def _pair_side(model: str, form: str, size: int) -> Any:
    from .experiments.speed_pairs import build_side

    return build_side({"model": model, "form": form}, size)


def _ablation_side(base: dict[str, Any], factor: str, value: int, deploy: bool) -> Any:
    from . import rm
    from .experiments.ablation import _model

    model = _model(base, factor, value)
    return rm.convert(model) if deploy else model


# --- discovery -----------------------------------------------------------------------------------------

def _seed_of(name: str) -> int:
    return int(name.removeprefix("seed").removesuffix(".csv"))


def discover(ctx: Context) -> list[Check]:
    """Every check the profile's committed results allow, each with its estimated cost."""
    from functools import partial

    results, config = ctx.results, ctx.config
    checks: list[Check] = []
    for path in sorted(results.glob("train/*/*/seed*/metrics.csv")):
        key = TrainKey(path.parent.parent.parent.name, path.parent.parent.name, _seed_of(path.parent.name))
        ctx.train_costs[key] = _run_cost(_seconds(path))
        checks.append(Check("train", f"train/{key.name}", 0.0, (key,), partial(_train_findings, key=key)))

    def needs_cost(key: TrainKey) -> float:
        return ctx.train_costs.get(key, _run_cost(_seconds(ctx.train_metrics(key))))

    for path in sorted(results.glob("finetune/*/*/*/seed*/metrics.csv")):
        seed_dir = path.parent
        key = TrainKey(seed_dir.parent.parent.parent.name, seed_dir.parent.parent.name, _seed_of(seed_dir.name))
        ctx.train_costs.setdefault(key, needs_cost(key))
        checks.append(Check("finetune", f"finetune/{key.dataset}/{key.run}/{seed_dir.parent.name}/{seed_dir.name}",
                            _run_cost(_seconds(path)), (key,), partial(_finetune_findings, path=path)))
    experiments = config.get("experiments", {})
    if "mobilenet" in experiments:
        for path in sorted(results.glob("mobilenet/*/seed*.csv")):
            keys = tuple(TrainKey(path.parent.name, experiments["mobilenet"][side], _seed_of(path.name))
                         for side in ("v2", "v1"))
            for key in keys:
                ctx.train_costs.setdefault(key, needs_cost(key))
            checks.append(Check("mobilenet", f"mobilenet/{path.parent.name}/{path.stem}", STARTUP_S + 10, keys,
                                partial(_mobilenet_findings, path=path)))
    if "pruning" in experiments:
        for path in sorted(results.glob("pruning/*/seed*.csv")):
            key = TrainKey(path.parent.name, experiments["pruning"]["run"], _seed_of(path.name))
            ctx.train_costs.setdefault(key, needs_cost(key))
            rows = read_rows(path)
            cost = STARTUP_S + sum(_pair_seconds(row, "speedup_vs_unpruned_", ips=("images_per_sec",
                                                                                    "images_per_sec_unpruned"))
                                   + 5.0 for row in rows)
            checks.append(Check("pruning", f"pruning/{path.parent.name}/{path.stem}", cost, (key,),
                                partial(_pruning_findings, path=path)))
    pairs = results / "speed" / "pairs.csv"
    for row in read_rows(pairs) if pairs.exists() else []:
        if row.get("status", "ok") != "ok" or not row.get("ratio"):
            continue
        size = int(row["input_size"].split("x")[-1])
        name = f"speed/{row['claim_id']}"
        checks.append(Check("speed", name, 3.0 + _pair_seconds(row, "", ips=("images_per_sec_a", "images_per_sec_b")),
                            (), comparable=_timeable_here(row), execute=partial(_speed_findings, row=row, name=name,
                                        build_a=partial(_pair_side, row["a_model"], row["a_form"], size),
                                        build_b=partial(_pair_side, row["b_model"], row["b_form"], size),
                                        prefix="ratio")))
    ablation_csv = results / "ablation" / "speed.csv"
    ablation = config.get("ablation", {})
    for row in read_rows(ablation_csv) if ablation_csv.exists() and ablation else []:
        base = ablation["base"]
        if base.get("model") != row.get("model") or not row.get("speedup_ci_low"):
            continue
        factor, value = row["factor"], int(_float(row["value"]))
        name = f"ablation/{factor}={value}"
        checks.append(Check("ablation", name, 3.0 + _pair_seconds(row, "", ips=("ips_rmnet", "ips_resnet_form")),
                            (), comparable=_timeable_here(row), execute=partial(_speed_findings, row=row, name=name,
                                        build_a=partial(_ablation_side, base, factor, value, True),
                                        build_b=partial(_ablation_side, base, factor, value, False),
                                        prefix="speedup")))
    return checks


def _timeable_here(row: dict[str, str]) -> bool:
    """A cheap first look (no timing): the row's CPU / GPU model, torch and thread count are this machine's."""
    import torch

    from .measure.throughput import device_name

    device = row.get("device") or "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        return False
    return (all(row.get(key) for key in REQUIRED_SETTINGS) and row.get("device_name") == device_name(device)
            and row.get("torch_version") == torch.__version__
            and _float(row.get("threads")) <= (os.cpu_count() or 1))


def _pair_seconds(row: dict[str, str], prefix: str, ips: tuple[str, str]) -> float:
    """A pair's recorded seconds, else its time from its rounds, iters, batch and both speeds."""
    recorded = _float(row.get(f"{prefix}pair_seconds"))
    if recorded == recorded:
        return recorded
    rounds, iters = _float(row.get(f"{prefix}rounds")), _float(row.get("iters"))
    batch, warmup = _float(row.get("batch_size")), _float(row.get("warmup"))
    per_image = sum(1 / _float(row.get(column)) for column in ips)
    estimate = batch * (rounds * iters + warmup) * per_image
    return estimate if estimate == estimate else 60.0


# --- selection -----------------------------------------------------------------------------------------

def select(checks: list[Check], train_costs: dict[TrainKey, float], *, budget_s: float | None, sample: int | None,
           seed: int, everything: bool = False, kinds: Sequence[str] | None = None) -> tuple[list[Check], float]:
    """The checks to run and their estimated total seconds.

    ``everything``: all of them (of ``kinds``). Otherwise (``kinds`` default: SAMPLE_KINDS) the kinds take
    turns (train, speed, ablation, finetune, ...), each offering its cheapest check not yet taken: checks
    timed on another machine last, then runs with no seed taken yet before more seeds of a run, the order
    among checks of similar cost shuffled by ``seed`` (costs multiplied by a factor in [1, 1.5)). A check
    is taken if its cost, plus the trainings it needs that are not already taken, fits in what is left
    of ``budget_s``, until ``sample`` checks are taken or nothing more fits. Deterministic for a given
    seed and set of rows."""
    wanted: Sequence[str] | None = kinds if kinds is not None else None if everything else SAMPLE_KINDS
    pool = [c for c in checks if wanted is None or c.kind in wanted]

    def marginal(check: Check, taken: set[TrainKey]) -> float:
        own = check.cost_s if check.comparable else 0.5  # reported n/a without timing
        return own + sum(train_costs.get(key, 600.0) for key in set(check.needs) - taken)

    if everything:
        return pool, marginal_total(pool, train_costs)
    rng = random.Random(seed)
    jitter = {id(check): 1 + 0.5 * rng.random() for check in pool}
    queues: dict[str, list[Check]] = {}
    for check in sorted(pool, key=lambda c: (not c.comparable, marginal(c, set()) * jitter[id(c)], c.name)):
        queues.setdefault(check.kind, []).append(check)
    preferred = ("train", "speed", "ablation", "finetune", "mobilenet", "pruning")
    order: list[str] = [kind for kind in preferred if kind in queues]
    order += [kind for kind in queues if kind not in order]
    chosen: list[Check] = []
    trained: set[TrainKey] = set()
    groups: set[str] = set()
    left = math.inf if budget_s is None else budget_s
    limit = math.inf if sample is None else sample
    progress = True
    while progress and len(chosen) < limit:
        progress = False
        for kind in order:
            if len(chosen) >= limit:
                break
            queue = queues[kind]
            fitting = [c for c in queue if marginal(c, trained) <= left]
            if not fitting:
                continue
            check = min(fitting, key=lambda c: (not c.comparable, _group(c) in groups,
                                                marginal(c, trained) * jitter[id(c)], c.name))
            groups.add(_group(check))
            queue.remove(check)
            left -= marginal(check, trained)
            trained |= set(check.needs)
            chosen.append(check)
            progress = True
    return chosen, marginal_total(chosen, train_costs)


def describe(check: Check, train_costs: dict[TrainKey, float]) -> str:
    if not check.comparable:
        return f"{check.name}  (timed on another machine or setting: reported n/a, not timed)"
    needs = "".join(f" + training {key.name} ~{train_costs.get(key, 600.0):.0f} s" for key in check.needs)
    return f"{check.name}  (~{check.cost_s:.0f} s{needs})"


def _group(check: Check) -> str:
    """A check's run without its seed (train/fashion_mnist/resnet18 for .../resnet18/seed2)."""
    return check.name.split("/seed")[0]


def marginal_total(checks: Iterable[Check], train_costs: dict[TrainKey, float]) -> float:
    checks = list(checks)
    needs = {key for check in checks for key in check.needs}
    own = sum(check.cost_s if check.comparable else 0.5 for check in checks)
    return own + sum(train_costs.get(key, 600.0) for key in needs)


# --- running and reporting -----------------------------------------------------------------------------

def verify(ctx: Context, checks: list[Check]) -> list[Finding]:
    """Run ``checks`` in order (trainings first, then timings, so nothing trains beside a timing)."""
    findings: list[Finding] = []
    timed = {"speed", "ablation", "pruning"}
    for check in sorted(checks, key=lambda c: c.kind in timed):
        ctx.log(f"checking {check.name} ...")
        try:
            findings += check.execute(ctx)
        except Exception as error:  # one broken check is reported; the others still run
            findings.append(Finding(check.name, "rerun", "", "", ERROR, f"{type(error).__name__}: {error}"))
    return findings


def format_table(findings: list[Finding]) -> str:
    header = ("run", "what", "committed", "rerun", "verdict", "note")
    rows = [header] + [(f.run, f.what, f.committed, f.rerun, f.verdict, f.note) for f in findings]
    widths = [min(48, max(len(str(row[i])) for row in rows)) for i in range(len(header) - 1)]

    def cut(text: str, width: int) -> str:
        return text if len(text) <= width else text[: width - 1] + "~"

    lines = ["  ".join(cut(str(cell), widths[i]).ljust(widths[i]) for i, cell in enumerate(row[:-1])) + "  " + row[-1]
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  ----")
    return "\n".join(line.rstrip() for line in lines)


def failed(findings: list[Finding], strict: bool = False) -> bool:
    bad = {DRIFT, ERROR} | ({NA} if strict else set())
    return any(f.verdict in bad for f in findings)


def add_subcommand(commands: Any) -> None:
    """``verify-evidence`` under the suite's command line (replication/cli.py)."""
    parser = commands.add_parser(
        "verify-evidence", help="rerun a sample of a profile's committed training runs and speed pairs; report drift",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="evidence", help="results/<profile>/ and config/<profile>.yaml")
    parser.add_argument("--configfile", nargs="+", help="the profile's config file(s), overlays last "
                                                        "(default: config/<profile>.yaml)")
    parser.add_argument("--results", type=Path, help="default: results/<profile>")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every committed run and pair (hours for a full profile)")
    which.add_argument("--budget-seconds", type=float, default=None,
                       help=f"estimated seconds the sample may take (default {DEFAULT_BUDGET_S:g}, "
                            "unless --sample is given)")
    parser.add_argument("--sample", type=int, help="at most this many checks (cheapest first, within the budget)")
    parser.add_argument("--seed", type=int, default=0, help="which sample, among checks of similar cost")
    parser.add_argument("--kind", action="append", choices=("train", "finetune", "mobilenet", "pruning", "speed",
                                                            "ablation"), help="only these kinds (repeatable)")
    parser.add_argument("--retries", type=int, default=1, help="re-measure a speed ratio outside its CI this "
                                                                "many times (default 1)")
    parser.add_argument("--strict", action="store_true", help="a check that cannot compare here (other CPU, "
                                                               "threads, torch) fails too")
    parser.add_argument("--list", action="store_true", help="list the sample and its estimated cost; run nothing")
    parser.add_argument("--keep", type=Path, help="rerun into this folder and keep it (default: a temp folder)")
    parser.add_argument("--csv", type=Path, help="also write the findings table here")
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    configfiles = args.configfile or [Path("config") / f"{args.profile}.yaml"]
    config = load_config(configfiles)
    results = args.results or Path("results") / str(config["results_name"])
    if not results.is_dir():
        raise ValueError(f"no committed results at {results}")
    budget = args.budget_seconds
    if budget is None and args.sample is None and not args.all:
        budget = DEFAULT_BUDGET_S
    ctx = Context(config, results, Path("unused"), retries=args.retries,
                  log=lambda message: print(f"[verify-evidence] {message}", file=sys.stderr, flush=True),
                  env={"PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent),
                                                                   os.environ.get("PYTHONPATH")]))})
    checks = discover(ctx)
    chosen, estimate = select(checks, ctx.train_costs, budget_s=budget, sample=args.sample, seed=args.seed,
                              everything=args.all, kinds=args.kind)
    print(f"verify-evidence: {len(chosen)} of {len(checks)} checks of results/{ctx.profile} "
          f"(seed {args.seed}, estimated {estimate:.0f} s" + (f", budget {budget:g} s" if budget else "") + "):")
    for check in chosen:
        print(f"  {describe(check, ctx.train_costs)}")
    if args.list or not chosen:
        return 0
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="verify-evidence-"))
    scratch.mkdir(parents=True, exist_ok=True)
    ctx.scratch = scratch.resolve()
    started = time.perf_counter()
    try:
        findings = verify(ctx, chosen)
    finally:
        if args.keep is None:
            shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.perf_counter() - started
    print(format_table(findings))
    counts = {verdict: sum(f.verdict == verdict for f in findings) for verdict in (OK, DRIFT, NA, ERROR)}
    print(f"{counts[OK]} ok, {counts[DRIFT]} drift, {counts[ERROR]} error, {counts[NA]} not comparable here; "
          f"{elapsed:.0f} s (estimated {estimate:.0f} s)")
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["run", "what", "committed", "rerun", "verdict", "note"])
            writer.writerows([f.run, f.what, f.committed, f.rerun, f.verdict, f.note] for f in findings)
    return 1 if failed(findings, args.strict) else 0
