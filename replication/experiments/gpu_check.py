"""One prepared, time-boxed GPU check (``scripts/gpu-check.sh``): the paper's speed tables measured on
the device at hand, set beside the paper's V100 numbers and the cost model's prediction, and a killed
and resumed AMP training through the engine.

Sections, in this order, each checking the deadline (``--budget-s``) and writing its rows as they
complete (a run cut short keeps every finished row):

1. ``speed``: Table 1 (CIFAR-10 / CIFAR-100 and ImageNet rows), Table 2 (MobileNets, CIFAR) and
   Table 3 (RepVGG vs ResNet, ImageNet) with the paper's protocol: batch 128, warm-up batches, timed
   blocks bracketed by ``torch.cuda.synchronize()``, for each variant of dtype (float32; float16 under
   autocast, bfloat16 on a CPU) and memory format (channels_last off / on). Each table group (the rows the
   paper compares) is timed in one interleaved run (:mod:`replication.measure.interleaved`), every
   row in its training and its deploy (RM / re-parameterised) form, so every ratio is paired by round:

   - ``rmnet_over_baseline``: the group's RMNet (deploy) over each other row in the form the paper timed
     (Table 2: RMNetV1, the converted MobileNetV2, over MobileNetV2 and MobileNetV1; Table 3: each
     RepVGG over its ResNet), the paper's speed claims;
   - ``rm_over_residual``: each row's deploy form over its own training form, the mechanism the claims
     rest on.

   Beside each ratio: the paper's V100 value (its images/s, Tables 1-3) and the cost model's
   prediction for this device (:mod:`replication.measure.cost_model`, spec matched by device name).
   Every group in the paper's setting (float32, channels_last off) first, then the training section, then
   the other variants (float16 + channels_last, float16, float32 + channels_last) while the budget lasts.
2. ``resume``: a 2-epoch training of a CIFAR-shaped synthetic set through the engine (AMP on CUDA) in a
   child process, SIGKILLed in epoch 2 after epoch 1's checkpoint, then resumed, against an
   uninterrupted run: final metrics and weights must be bit-identical.
3. ``agreement``: per variant, Spearman's rank correlation and the median relative error of the
   measured ratios against the predicted ones (and against the paper's V100 ratios).

Outputs: ``<out>/gpu-<device>.csv`` (every row, column ``section``: single | ratio | agreement |
resume) and ``<out>/gpu-<device>.md``. Every row carries the device name, dtype, batch, channels_last,
torch / CUDA / cuDNN versions, the clock (``wall``), the suite commit and the package versions.

    python -m replication.experiments.gpu_check --device cuda            # at most ~8 min on an H100 / H200
    python -m replication.experiments.gpu_check --device cpu --quick     # CI: the same path at tiny sizes

Imports are only torch, numpy, pandas, pyyaml, timm / torchvision (the model zoo) and this package.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from .. import layout, rm, zoo
from ..atomic_io import append_rows_atomic, write_text_atomic
from ..measure import cost_model
from ..measure.interleaved import measure_interleaved
from ..measure.throughput import ThroughputConfig, ThroughputError, device_name
from ..paper import reported
from ..provenance import provenance
from .paper_rows import PAPER_ROWS, PaperRow
from .throughput import IMAGENET_GROUPS, SKIP_DEPLOY, paper_form

SECTIONS = ("single", "ratio", "agreement", "resume")
CLAIMS_FILE = Path(__file__).resolve().parent.parent / "paper" / "claims.yaml"


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """Sizes of one run: the full check on a GPU, or ``quick`` (CI, CPU)."""

    batch_size: int = 128
    cifar_warmup: int = 10
    cifar_iters: int = 10
    cifar_rounds: int = 10
    imagenet_warmup: int = 5
    imagenet_iters: int = 5
    imagenet_rounds: int = 6
    imagenet_size: int = 224
    imagenet_groups: tuple[int, ...] = (1, 2, 3, 4, 5)
    cifar_datasets: tuple[str, ...] = ("CIFAR10", "CIFAR100")
    table3: bool = True
    # the paper's setting first; then the fastest modern one; the budget may end before the last
    variants: tuple[tuple[str, bool], ...] = (("float32", False), ("float16", True), ("float16", False),
                                              ("float32", True))
    imagenet_variants: tuple[tuple[str, bool], ...] | None = None   # None: ``variants``
    train_images: int = 1024
    test_images: int = 512
    train_batch: int = 128
    train_model: str = "rmnet26x3_32_cifar"
    train_model_kwargs: tuple[tuple[str, Any], ...] = ()
    train_timeout_s: float = 150.0
    resume_estimate_s: float = 60.0   # what the speed section leaves for the resume section
    members: tuple[str, ...] | None = None            # the paper rows timed (labels); None: every row
    model_kwargs: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()   # per model: narrower widths

    @classmethod
    def quick(cls, device: str) -> Settings:
        half = "float16" if device.startswith("cuda") else "bfloat16"
        return cls(batch_size=2, cifar_warmup=1, cifar_iters=1, cifar_rounds=3, imagenet_warmup=0, imagenet_iters=1,
                   imagenet_rounds=2, imagenet_size=64, imagenet_groups=(1,), cifar_datasets=("CIFAR10",),
                   table3=False, variants=(("float32", False), (half, True)), imagenet_variants=(("float32", False),),
                   train_images=64, test_images=32, train_batch=32, train_model="resnet18_cifar",
                   train_model_kwargs=(("channels", (8, 16, 32, 64)),), train_timeout_s=90.0,
                   resume_estimate_s=45.0,
                   # two rows of each table group, narrow where the family allows: the code path, in seconds
                   members=("ResNet 34", "RMNet 26x3_32", "MobileNetV2", "MobileNetV1", "ResNet 50", "RMNet 41x4_8"),
                   model_kwargs=(("resnet34_cifar", (("channels", (8, 16, 32, 64)),)),
                                 ("rmnet26x3_32_cifar", (("group_width", 4), ("widths", (8, 16, 32, 64)))),
                                 ("rmnet41x4_8", (("widths", (16, 32, 64, 128)),))))

    @classmethod
    def full(cls, device: str) -> Settings:
        if device.startswith("cuda"):
            return cls()
        return replace(cls(), variants=(("float32", False), ("bfloat16", True), ("bfloat16", False),
                                        ("float32", True)))


# --------------------------------------------------------------------------- the groups of the tables


@dataclass(frozen=True)
class Member:
    """One paper row in a timed group: which model, which forms, which one the paper timed."""

    row: PaperRow
    forms: tuple[str, ...]
    paper_form: str
    is_rm: bool                   # the group's RM network (the numerator of rmnet_over_baseline)
    label: str                    # the paper's name of the row (RMNetV1 for the converted MobileNetV2)


@dataclass(frozen=True)
class Group:
    table: str
    dataset: str
    name: str
    members: tuple[Member, ...]
    ratios: tuple[tuple[str, str, str, str, str], ...]   # (kind, a label, a form, b label, b form)
    imagenet: bool


def _rows(table: str, dataset: str) -> list[PaperRow]:
    return [row for row in PAPER_ROWS if row.table == table and row.dataset == dataset]


def _table1_group(dataset: str, rows: list[PaperRow], name: str) -> Group:
    members = []
    for row in rows:
        forms = ("train",) if row.model in SKIP_DEPLOY else ("train", "deploy")
        members.append(Member(row, forms, paper_form(row.backbone), row.backbone.startswith("RMNet"), row.backbone))
    ratios = [("rm_over_residual", m.label, "deploy", m.label, "train") for m in members if "deploy" in m.forms]
    ratios += [("rmnet_over_baseline", rmnet.label, "deploy", other.label, other.paper_form)
               for rmnet in members if rmnet.is_rm for other in members if not other.is_rm]
    return Group("table1_sota", dataset, name, tuple(members), tuple(ratios), dataset == "ImageNet")


def groups(settings: Settings) -> list[Group]:
    """Every group the check times, CIFAR-sized first, then ImageNet's five."""
    out = []
    for dataset in settings.cifar_datasets:
        out.append(_table1_group(dataset, _rows("table1_sota", dataset), f"table1_sota/{dataset}"))
    for dataset in settings.cifar_datasets:
        mobilenets = {row.backbone: row for row in _rows("table2_mobilenet", dataset)}
        v2, v1 = mobilenets["MobileNetV2"], mobilenets["MobileNetV1"]
        pair = (Member(v2, ("train", "deploy"), "train", False, "MobileNetV2"),
                Member(v1, ("train",), "train", False, "MobileNetV1"))
        # RMNetV1 is MobileNetV2's deploy form: its ratio over MobileNetV2 is both kinds at once
        table2 = (("rm_over_residual", "MobileNetV2", "deploy", "MobileNetV2", "train"),
                  ("rmnet_over_baseline", "MobileNetV2", "deploy", "MobileNetV2", "train"),
                  ("rmnet_over_baseline", "MobileNetV2", "deploy", "MobileNetV1", "train"))
        out.append(Group("table2_mobilenet", dataset, f"table2_mobilenet/{dataset}", pair, table2, False))
    if settings.table3:
        table3_rows = _rows("table3_repvgg_vs_resnet", "ImageNet")
        members = tuple(Member(row, ("train", "deploy") if row.backbone.startswith("RepVGG") else ("train",),
                               paper_form(row.backbone), row.backbone.startswith("RepVGG"), row.backbone)
                        for row in table3_rows)
        table3 = (("rm_over_residual", "RepVGG 18", "deploy", "RepVGG 18", "train"),
                  ("rm_over_residual", "RepVGG 34", "deploy", "RepVGG 34", "train"),
                  ("rmnet_over_baseline", "RepVGG 18", "deploy", "ResNet 18", "train"),
                  ("rmnet_over_baseline", "RepVGG 34", "deploy", "ResNet 34", "train"))
        out.append(Group("table3_repvgg_vs_resnet", "ImageNet", "table3_repvgg_vs_resnet/ImageNet", members, table3,
                         True))
    imagenet = _rows("table1_sota", "ImageNet")
    for number in settings.imagenet_groups:
        chosen = [row for row in imagenet if IMAGENET_GROUPS[row.backbone] == number]
        out.append(_table1_group("ImageNet", chosen, f"table1_sota/ImageNet/group{number}"))
    return [_only(group, settings.members) for group in out] if settings.members else out


def _only(group: Group, labels: tuple[str, ...]) -> Group:
    """``group`` with only the rows named in ``labels`` and the ratios between them."""
    members = tuple(member for member in group.members if member.label in labels)
    ratios = tuple(ratio for ratio in group.ratios if ratio[1] in labels and ratio[3] in labels)
    return replace(group, members=members, ratios=ratios)


def paper_speeds() -> dict[tuple[str, str, str], float]:
    """(table, dataset, backbone) -> the paper's images/s (Tesla V100, batch 128)."""
    speeds = {}
    for table in ("table1_sota", "table2_mobilenet", "table3_repvgg_vs_resnet"):
        for record in reported(table).itertuples():
            speeds[(table, str(record.dataset), str(record.backbone))] = float(record.imgs_per_sec)
    return speeds


def paper_label(group: Group, label: str, form: str) -> str:
    """The paper row whose images/s stand for ``label`` in ``form`` (Table 2: the converted MobileNetV2
    is RMNetV1)."""
    return "RMNetV1" if group.table == "table2_mobilenet" and label == "MobileNetV2" and form == "deploy" else label


def speed_claims() -> dict[tuple[str, str, str, str, int], str]:
    """(a model, a form, b model, b form, input size) -> claim id, for the speed_ratio claims of
    ``replication/paper/claims.yaml`` (read as data: the claims code is not imported)."""
    claims = {}
    for entry in yaml.safe_load(CLAIMS_FILE.read_text()) or []:
        measure = entry.get("measure") or {}
        if measure.get("kind") == "speed_ratio":
            a, b = measure["a"], measure["b"]
            claims[(a["model"], a.get("form", "train"), b["model"], b.get("form", "train"),
                    int(measure["input_size"]))] = entry["id"]
    return claims


# --------------------------------------------------------------------------- context of every row


def device_slug(device: str) -> str:
    """``nvidia-h200`` for an 'NVIDIA H200', ``cpu`` for any CPU: the ``<device>`` of the file names."""
    if not device.startswith("cuda"):
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "-", device_name(device).lower()).strip("-") or "cuda"


def context(device: str, quick: bool) -> dict[str, object]:
    cuda = device.startswith("cuda")
    info = dict(provenance())
    if info.get("suite_commit", "unknown") == "unknown" and os.environ.get("RMNET_SUITE_COMMIT"):
        info["suite_commit"] = os.environ["RMNET_SUITE_COMMIT"]  # a copy without .git (a device machine)
    return {"device": device, "device_name": device_name(device), "torch_version": torch.__version__,
            "cuda_version": torch.version.cuda if cuda else "",
            "cudnn_version": torch.backends.cudnn.version() if cuda else "",
            "cudnn_benchmark": cuda, "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32) if cuda else "",
            "threads": torch.get_num_threads(), "clock": "wall", "statistic": "median", "quick": quick, **info}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# --------------------------------------------------------------------------- cost model


class Predictor:
    """The cost model's images/s for a form on this device (its devices.yaml spec), cached per form and dtype.
    On a device without a spec (a CPU) it predicts for ``fallback`` and says so in ``predicted_device``."""

    def __init__(self, device: str, fallback: str = "v100") -> None:
        self.note = ""
        try:
            self.spec = cost_model.device_spec(device_name(device)) if device.startswith("cuda") else None
        except ValueError:
            self.spec = None
        if self.spec is None:
            self.spec = cost_model.device_spec(fallback)
            self.note = f"no devices.yaml spec for {device_name(device)}: predicted for {self.spec.key}"
        self.cache: dict[tuple[str, str, str, int], float] = {}

    def dtype(self, dtype: str) -> str:
        """The peak the run used: fp16 / bf16, or tf32 for float32 where cuDNN may use it (Ampere and later)."""
        if dtype != "float32":
            return {"float16": "fp16", "bfloat16": "bf16"}[dtype]
        assert self.spec is not None
        tf32 = torch.backends.cudnn.allow_tf32 and self.spec.peak_flops.get("tf32")
        return "tf32" if tf32 else "fp32"

    def images_per_sec(self, key: str, module: torch.nn.Module, shape: tuple[int, ...], dtype: str) -> float:
        assert self.spec is not None
        peak = self.dtype(dtype)
        cached = (key, peak, "x".join(map(str, shape)), shape[0])
        if cached not in self.cache:
            trace_dtype = "fp32" if peak in ("fp32", "tf32") else peak
            try:
                cost = cost_model.trace(module, shape, dtype=trace_dtype)
                self.cache[cached] = cost_model.predict(cost, self.spec, peak).images_per_sec
            except (RuntimeError, ValueError, NotImplementedError):
                self.cache[cached] = float("nan")
        return self.cache[cached]


# --------------------------------------------------------------------------- speed section


class Budget:
    """The run's deadline (``time.perf_counter()`` seconds)."""

    def __init__(self, seconds: float) -> None:
        self.start = time.perf_counter()
        self.end = self.start + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


class Writer:
    """Rows to ``<out>/gpu-<device>.csv`` as they come (atomic rewrite), and kept for the report."""

    def __init__(self, path: Path, common: dict[str, object]) -> None:
        self.path, self.common = path, common
        self.rows: list[dict[str, object]] = []
        if path.exists():
            path.unlink()

    def add(self, rows: list[dict[str, object]]) -> None:
        full = [{"section": row["section"], **self.common, **row, "timestamp": _now()} for row in rows]
        self.rows.extend(full)
        if full:
            append_rows_atomic(full, self.path)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


class Forms:
    """Every member's forms, built once on the CPU (timm / zoo names, untrained weights) and kept for
    every variant; ``rm.convert`` gives the deploy form. ``model_kwargs``: constructor arguments per model
    (the quick run's narrower widths)."""

    def __init__(self, model_kwargs: dict[str, dict[str, Any]] | None = None) -> None:
        self.cache: dict[tuple[str, int, int], dict[str, torch.nn.Module]] = {}
        self.model_kwargs = model_kwargs or {}

    def get(self, member: Member, input_size: int) -> dict[str, torch.nn.Module]:
        key = (member.row.model, member.row.num_classes, input_size)
        if key not in self.cache:
            torch.manual_seed(0)
            kwargs = self.model_kwargs.get(member.row.model, {})
            model = zoo.create(member.row.model, num_classes=member.row.num_classes, **kwargs).eval()
            forms = {"train": model}
            if "deploy" in member.forms:
                forms["deploy"] = rm.convert(model)
            self.cache[key] = forms
        return self.cache[key]


def _group_input(group: Group, settings: Settings) -> int:
    return settings.imagenet_size if group.imagenet else 32


def measure_group(group: Group, dtype: str, channels_last: bool, device: str, settings: Settings, forms: Forms,
                  predictor: Predictor, speeds: dict, claims: dict, budget: Budget, reserve_s: float
                  ) -> list[dict[str, object]]:
    """One group under one variant: its single-form rows, then its ratio rows."""
    size = _group_input(group, settings)
    warmup, iters, rounds = ((settings.imagenet_warmup, settings.imagenet_iters, settings.imagenet_rounds)
                             if group.imagenet else
                             (settings.cifar_warmup, settings.cifar_iters, settings.cifar_rounds))
    config = ThroughputConfig(batch_size=settings.batch_size, input_size=(3, size, size), warmup=warmup, iters=iters,
                              repeats=1, device=device, dtype=dtype, channels_last=channels_last,
                              pin_allocator=not device.startswith("cuda"))
    variant = {"table": group.table, "dataset": group.dataset, "group": group.name, "dtype": dtype,
               "channels_last": channels_last, "batch_size": settings.batch_size, "input_size": f"3x{size}x{size}",
               "warmup": warmup, "iters": iters, "predicted_device": predictor.spec.key if predictor.spec else "",
               "predicted_dtype": predictor.dtype(dtype), "predicted_note": predictor.note}
    modules: dict[str, torch.nn.Module] = {}
    for member in group.members:
        built = forms.get(member, size)
        for form in member.forms:
            modules[f"{member.label}:{form}"] = built[form]
    status = "ok"
    result = None
    try:
        result = measure_interleaved(modules, config, rounds=rounds, min_rounds=2,
                                     deadline=budget.end - reserve_s)
    except ThroughputError as error:
        status = "oom" if error.out_of_memory else f"error: {error}"[:300]
    finally:
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    variant["rounds"] = result.rounds if result else 0
    variant["stopped_early"] = bool(result and result.stopped_early)
    shape = (settings.batch_size, 3, size, size)
    rows: list[dict[str, object]] = []
    member_of = {member.label: member for member in group.members}
    predicted_of: dict[tuple[str, str], float] = {}
    for name, module in modules.items():
        label, form = name.split(":")
        member = member_of[label]
        predicted = predictor.images_per_sec(f"{member.row.model}:{member.row.num_classes}:{form}", module, shape,
                                             dtype)
        predicted_of[(label, form)] = predicted
        paper = speeds.get((group.table, group.dataset, paper_label(group, label, form)), math.nan)
        measured = result.images_per_sec(name) if result else math.nan
        rows.append({"section": "single", **variant, "status": status, "backbone": label, "model": member.row.model,
                     "form": form, "paper_form": member.paper_form, "images_per_sec": measured,
                     "images_per_sec_min": min(result.rates(name)) if result else math.nan,
                     "images_per_sec_max": max(result.rates(name)) if result else math.nan,
                     "paper_v100_images_per_sec": paper if form == member.paper_form or
                     paper_label(group, label, form) != label else math.nan,
                     "predicted_images_per_sec": predicted})
    for kind, a_label, a_form, b_label, b_form in group.ratios:
        a, b = member_of[a_label], member_of[b_label]
        paper_a = speeds.get((group.table, group.dataset, paper_label(group, a_label, a_form)), math.nan)
        paper_b = speeds.get((group.table, group.dataset, paper_label(group, b_label, b_form)), math.nan)
        paper_ratio = paper_a / paper_b if (kind == "rmnet_over_baseline" or paper_label(group, a_label, a_form)
                                            != paper_label(group, b_label, b_form)) else math.nan
        predicted = predicted_of[(a_label, a_form)] / predicted_of[(b_label, b_form)]
        if result:
            ratio, low, high = result.ratio(f"{a_label}:{a_form}", f"{b_label}:{b_form}")
            ips_a, ips_b = result.images_per_sec(f"{a_label}:{a_form}"), result.images_per_sec(f"{b_label}:{b_form}")
        else:
            ratio = low = high = ips_a = ips_b = math.nan
        claim = claims.get((a.row.model, a_form, b.row.model, b_form, size), "")
        rows.append({"section": "ratio", **variant, "status": status, "ratio_kind": kind,
                     "pair_id": f"{group.name}:{a_label}:{a_form}/{b_label}:{b_form}", "claim_id": claim,
                     "a_backbone": a_label, "a_model": a.row.model, "a_form": a_form,
                     "b_backbone": b_label, "b_model": b.row.model, "b_form": b_form,
                     "ratio": ratio, "ratio_ci_low": low, "ratio_ci_high": high,
                     "images_per_sec_a": ips_a, "images_per_sec_b": ips_b,
                     "paper_v100_ratio": paper_ratio, "predicted_ratio": predicted,
                     "error_vs_predicted": ratio / predicted - 1 if predicted == predicted else math.nan,
                     "error_vs_paper": ratio / paper_ratio - 1 if paper_ratio == paper_ratio else math.nan})
    return rows


def skipped_group(group: Group, dtype: str, channels_last: bool, settings: Settings) -> list[dict[str, object]]:
    """Rows saying that the budget ran out before this group and variant."""
    size = _group_input(group, settings)
    base = {"table": group.table, "dataset": group.dataset, "group": group.name, "dtype": dtype,
            "channels_last": channels_last, "batch_size": settings.batch_size, "input_size": f"3x{size}x{size}",
            "status": "skipped: time budget", "rounds": 0}
    return [{"section": "ratio", **base, "ratio_kind": kind, "pair_id": f"{group.name}:{a}:{af}/{b}:{bf}",
             "a_backbone": a, "a_form": af, "b_backbone": b, "b_form": bf}
            for kind, a, af, b, bf in group.ratios]


# --------------------------------------------------------------------------- agreement


def ranks(values: np.ndarray) -> np.ndarray:
    return pd.Series(values).rank(method="average").to_numpy()


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (NaN for fewer than three pairs or a constant side)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def median_error(measured: list[float], reference: list[float]) -> float:
    """Median of |measured / reference - 1| over the finite pairs."""
    a, b = np.asarray(measured, dtype=float), np.asarray(reference, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b) & (b != 0)
    return float(np.median(np.abs(a[keep] / b[keep] - 1))) if keep.any() else math.nan


def agreement_rows(frame: pd.DataFrame) -> list[dict[str, object]]:
    """Per variant (dtype, channels_last) and ratio kind (and all kinds): measured ratios against predicted
    and against the paper's V100 ratios."""
    rows: list[dict[str, object]] = []
    ratios = frame[(frame["section"] == "ratio") & (frame["status"] == "ok")] if len(frame) else frame
    if ratios.empty:
        return rows
    # Table 2's RMNetV1 / MobileNetV2 is both kinds: counted once in "all"
    ratios = ratios.drop_duplicates(subset=["pair_id", "dtype", "channels_last", "ratio_kind"])
    for (dtype, channels_last), variant in ratios.groupby(["dtype", "channels_last"], sort=False):
        for kind in ("all", "rmnet_over_baseline", "rm_over_residual"):
            part = (variant.drop_duplicates(subset=["pair_id"]) if kind == "all"
                    else variant[variant["ratio_kind"] == kind])
            if part.empty:
                continue
            rows.append({"section": "agreement", "dtype": dtype, "channels_last": channels_last, "ratio_kind": kind,
                         "status": "ok", "n_ratios": len(part),
                         "predicted_device": part["predicted_device"].iloc[0],
                         "spearman_vs_predicted": spearman(list(part["ratio"]), list(part["predicted_ratio"])),
                         "median_error_vs_predicted": median_error(list(part["ratio"]), list(part["predicted_ratio"])),
                         "n_paper": int(part["paper_v100_ratio"].notna().sum()),
                         "spearman_vs_paper": spearman(list(part["ratio"]), list(part["paper_v100_ratio"])),
                         "median_error_vs_paper": median_error(list(part["ratio"]), list(part["paper_v100_ratio"]))})
    return rows


# --------------------------------------------------------------------------- resume section


def write_cifar_batches(root: Path, train: int, test: int, seed: int = 0) -> Path:
    """A CIFAR-10-shaped synthetic set in torchvision's python format (learnable: class k has a bright
    band at rows 3k..3k+2), under ``root/cifar-10-batches-py``."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    counts = [train // 5 + (1 if i < train % 5 else 0) for i in range(5)] + [test]
    for name, count in zip(names, counts, strict=True):
        labels = rng.integers(0, 10, count)
        images = rng.integers(0, 80, (count, 32, 32, 3))
        for index, label in enumerate(labels):
            images[index, 3 * label: 3 * label + 2] = 255
        batch = {"data": images.astype(np.uint8).transpose(0, 3, 1, 2).reshape(count, -1),
                 "labels": labels.tolist()}
        with open(base / name, "wb") as handle:
            pickle.dump(batch, handle)
    with open(base / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, handle)
    return root


class _Pause:
    """Makes a training run stop at step ``step`` of epoch ``epoch`` (0-based), after the previous epoch's
    checkpoint: it writes ``marker`` and waits to be killed. It watches the epoch through the sampler's
    ``set_epoch`` and the steps through a forward pre-hook on the network, so nothing the run computes
    (its data order, its random numbers) changes."""

    def __init__(self, run: Any, epoch: int, step: int, marker: Path) -> None:
        self.epoch, self.step, self.marker = epoch, step, marker
        self.current, self.calls = -1, 0
        set_epoch = run.sampler.set_epoch

        def watched(epoch: int) -> None:
            self.current, self.calls = epoch, 0
            set_epoch(epoch)

        run.sampler.set_epoch = watched
        run.model.register_forward_pre_hook(self.hook)

    def hook(self, module: torch.nn.Module, args: Any) -> None:
        if not module.training:
            return
        if self.current == self.epoch and self.calls == self.step:
            self.marker.write_text("paused")
            while True:
                time.sleep(1)
        self.calls += 1


def train_child(spec: dict[str, Any]) -> None:
    """The child process of the resume section: train ``spec`` through the engine; with ``pause_epoch``,
    stop mid-epoch (after the previous epoch's checkpoint) and wait for SIGKILL."""
    from ..data.datasets import DataConfig  # noqa: PLC0415  (the child needs the engine; the parent does not)
    from ..train.engine import TrainConfig, save_epoch, setup_training, train_one_epoch  # noqa: PLC0415

    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(1)
    data = DataConfig(name="cifar10", root=spec["root"], verify_checksums=False)
    config = TrainConfig(model=spec["model"], data=data, preset="embedded",
                         overrides={"epochs": 2, "batch_size": spec["batch"], "warmup_epochs": 0},
                         output_dir=spec["output_dir"], seed=0, device=spec["device"], amp=True, channels_last=True,
                         workers=0, model_kwargs=spec.get("model_kwargs", {}), profile="gpu-check")
    run = setup_training(config)
    if spec.get("pause_epoch") is not None:
        _Pause(run, spec["pause_epoch"], spec.get("pause_step", 1), Path(spec["marker"]))
    for epoch in range(run.start_epoch, run.recipe.epochs):
        stats = train_one_epoch(run, epoch)
        save_epoch(run, epoch, stats)


_COMPARED = ("epoch", "lr", "train_loss", "train_top1", "test_loss", "top1", "top5")


def _child(spec: dict[str, Any]) -> subprocess.Popen:
    env = {**os.environ, "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "replication.experiments.gpu_check", "--train-child",
                             json.dumps(spec)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen, timeout: float) -> tuple[int, str]:
    try:
        output, _ = process.communicate(timeout=max(timeout, 1.0))
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        return -9, (output or "") + "\n[timed out]"
    return process.returncode, output or ""


def resume_check(device: str, settings: Settings, budget: Budget, workdir: Path) -> dict[str, object]:
    """Uninterrupted 2-epoch run vs one SIGKILLed in epoch 2 and resumed: identical final metrics and weights?"""
    started = time.perf_counter()
    root = write_cifar_batches(workdir / "cifar", settings.train_images, settings.test_images)
    base = {"root": str(root), "model": settings.train_model, "batch": settings.train_batch, "device": device,
            "model_kwargs": {key: list(value) if isinstance(value, tuple) else value
                             for key, value in settings.train_model_kwargs}}
    row: dict[str, object] = {"section": "resume", "model": settings.train_model, "amp": device.startswith("cuda"),
                              "channels_last": device.startswith("cuda"), "batch_size": settings.train_batch,
                              "train_images": settings.train_images, "test_images": settings.test_images,
                              "epochs": 2, "dtype": "float16 autocast" if device.startswith("cuda") else "float32"}
    timeout = min(settings.train_timeout_s, max(budget.left(), 10.0))
    reference = _child({**base, "output_dir": str(workdir / "reference")})
    marker = workdir / "paused"
    killed = _child({**base, "output_dir": str(workdir / "killed"), "pause_epoch": 1, "pause_step": 1,
                     "marker": str(marker)})
    deadline = time.perf_counter() + timeout
    while not marker.exists() and killed.poll() is None and time.perf_counter() < deadline:
        time.sleep(0.2)
    paused = marker.exists()
    if killed.poll() is None:
        os.kill(killed.pid, signal.SIGKILL)
    killed_code, killed_log = _finish(killed, 30)
    code, log = _finish(reference, deadline - time.perf_counter())
    if not paused or code != 0:
        detail = killed_log if not paused else log
        return {**row, "status": f"error: {'the killed run never reached epoch 2' if not paused else 'reference run'}"
                                 f" ({detail.strip().splitlines()[-1][:200] if detail.strip() else 'no output'})",
                "seconds": time.perf_counter() - started}
    checkpoint = workdir / "killed" / "checkpoint.pt"
    epoch_at_kill = int(torch.load(checkpoint, map_location="cpu", weights_only=False)["epoch"]) + 1
    resumed = _child({**base, "output_dir": str(workdir / "killed")})
    resumed_code, resumed_log = _finish(resumed, max(deadline - time.perf_counter(), 10.0))
    if resumed_code != 0:
        tail = resumed_log.strip().splitlines()[-1][:200] if resumed_log.strip() else "no output"
        return {**row, "status": f"error: resumed run ({tail})", "seconds": time.perf_counter() - started}
    first = pd.read_csv(workdir / "reference" / "metrics.csv")
    second = pd.read_csv(workdir / "killed" / "metrics.csv")
    same_metrics = (list(first["epoch"]) == list(second["epoch"]) == [1, 2]
                    and all(first[key].tolist() == second[key].tolist() for key in _COMPARED))
    weights_a = torch.load(workdir / "reference" / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]
    weights_b = torch.load(checkpoint, map_location="cpu", weights_only=False)["model"]
    same_weights = weights_a.keys() == weights_b.keys() and all(torch.equal(weights_a[k], weights_b[k])
                                                                 for k in weights_a)
    final_a, final_b = first.iloc[-1], second.iloc[-1]
    return {**row, "status": "ok", "killed_with": "SIGKILL", "killed_exit_code": killed_code,
            "killed_in_epoch": epoch_at_kill + 1, "resumed_from_epoch": epoch_at_kill,
            "identical_metrics": bool(same_metrics), "identical_weights": bool(same_weights),
            "identical": bool(same_metrics and same_weights),
            "reference_top1": float(final_a["top1"]), "resumed_top1": float(final_b["top1"]),
            "reference_train_loss": float(final_a["train_loss"]), "resumed_train_loss": float(final_b["train_loss"]),
            "reference_test_loss": float(final_a["test_loss"]), "resumed_test_loss": float(final_b["test_loss"]),
            "seconds": time.perf_counter() - started}


# --------------------------------------------------------------------------- report


def _fmt(value: object, digits: int = 2) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.{digits}f}"
    return str(value)


def _percent(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f} %"


def markdown(frame: pd.DataFrame, common: dict[str, object], budget_s: float, elapsed: float) -> str:
    def text(value: object) -> object:
        return "-" if value is None or value == "" or (isinstance(value, float) and value != value) else value

    timing = (f"{elapsed:.0f} s of a {budget_s:.0f} s budget" if elapsed == elapsed
              else "the run ended before its report (see the CSV's timestamps)")
    lines = [f"# GPU check: {common['device_name']}", "",
             f"Device `{common['device']}` ({common['device_name']}), torch {common['torch_version']}, CUDA "
             f"{text(common['cuda_version'])}, cuDNN {text(common['cudnn_version'])}, suite commit "
             f"`{common['suite_commit']}`{', quick (CI sizes: not a measurement)' if common['quick'] else ''}. "
             f"Wall-clock timing, synchronised blocks; {timing}. Ratios are "
             "paired by round (median of per-round ratios, bootstrap 95 % CI); `paper` is the ratio of the "
             "paper's V100 images/s, `predicted` the cost model's for this device (an estimate).", ""]
    ratios = frame[frame["section"] == "ratio"] if len(frame) else frame
    for (dtype, channels_last), variant in (ratios.groupby(["dtype", "channels_last"], sort=False)
                                            if len(ratios) else []):
        first = variant.iloc[0]
        lines += [f"## {dtype}, channels_last {'on' if channels_last else 'off'}, batch {int(first['batch_size'])}", "",
                  "| group | ratio | kind | measured [95 % CI] | paper V100 | predicted | status |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for row in variant.itertuples():
            measured = (f"{row.ratio:.3f} [{row.ratio_ci_low:.3f}, {row.ratio_ci_high:.3f}]"
                        if row.status == "ok" and row.ratio == row.ratio else "n/a")
            lines.append(f"| {row.group} | {row.a_backbone} ({row.a_form}) / {row.b_backbone} ({row.b_form}) | "
                         f"{row.ratio_kind} | {measured} | {_fmt(getattr(row, 'paper_v100_ratio', math.nan), 3)} | "
                         f"{_fmt(getattr(row, 'predicted_ratio', math.nan), 3)} | {row.status} |")
        lines.append("")
    agreement = frame[frame["section"] == "agreement"] if len(frame) else frame
    if len(agreement):
        lines += ["## Measured ratios against predicted and paper ratios", "",
                  "| dtype | channels_last | kind | n | Spearman vs predicted | median error vs predicted | "
                  "Spearman vs paper | median error vs paper |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for row in agreement.itertuples():
            lines.append(f"| {row.dtype} | {row.channels_last} | {row.ratio_kind} | {int(row.n_ratios)} | "
                         f"{_fmt(row.spearman_vs_predicted)} | {_percent(row.median_error_vs_predicted)} | "
                         f"{_fmt(row.spearman_vs_paper)} | {_percent(row.median_error_vs_paper)} |")
        lines.append("")
    resume = frame[frame["section"] == "resume"] if len(frame) else frame
    if len(resume):
        row = resume.iloc[0]
        if row["status"] == "ok":
            verdict = "bit-identical" if row["identical"] else "NOT identical"
            lines += ["## Kill and resume", "",
                      f"{row['model']}, 2 epochs of {int(row['train_images'])} synthetic CIFAR-shaped images, batch "
                      f"{int(row['batch_size'])}, AMP {'on' if row['amp'] else 'off (CPU)'}: SIGKILLed in epoch "
                      f"{int(row['killed_in_epoch'])}, resumed from epoch {int(row['resumed_from_epoch'])}'s "
                      "checkpoint. Final "
                      f"metrics and weights against an uninterrupted run: **{verdict}** (top-1 "
                      f"{row['resumed_top1']:.2f} vs {row['reference_top1']:.2f} %, test loss "
                      f"{row['resumed_test_loss']:.6f} vs {row['reference_test_loss']:.6f}).", ""]
        else:
            lines += ["## Kill and resume", "", f"{row['status']}", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def run(device: str, *, quick: bool, out: Path, budget_s: float, sections: tuple[str, ...] = ("speed", "resume"),
        log=print) -> Path:
    """The whole check; returns the CSV path. See the module docstring."""
    budget = Budget(budget_s)
    settings = Settings.quick(device) if quick else Settings.full(device)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    slug = device_slug(device)
    csv_path, md_path = out / f"gpu-{slug}.csv", out / f"gpu-{slug}.md"
    out.mkdir(parents=True, exist_ok=True)
    common = context(device, quick)
    writer = Writer(csv_path, common)
    reserve = 15.0 if quick else 25.0                            # analysis and report at the end
    resume_reserve = settings.resume_estimate_s if "resume" in sections else 0.0
    all_groups = groups(settings) if "speed" in sections else []
    small = [group for group in all_groups if not group.imagenet or group.table == "table3_repvgg_vs_resnet"]
    large = [group for group in all_groups if group not in small]
    kwargs = {model: {key: list(value) if isinstance(value, tuple) else value for key, value in pairs}
              for model, pairs in settings.model_kwargs}
    forms, predictor, speeds, claims = Forms(kwargs), Predictor(device), paper_speeds(), speed_claims()

    def timed_groups(dtype: str, channels_last: bool, keep_s: float) -> None:
        chosen = small + (large if (dtype, channels_last) in imagenet_variants else [])
        for group in chosen:
            # a group is started only if its first rounds can end before what the later sections need
            start_margin = (5.0 if quick else 30.0) if group.imagenet else (5.0 if quick else 10.0)
            if budget.left() < keep_s + start_margin:
                writer.add(skipped_group(group, dtype, channels_last, settings))
                continue
            log(f"[gpu-check {budget.left():5.0f} s left] {group.name} {dtype} channels_last={channels_last}")
            writer.add(measure_group(group, dtype, channels_last, device, settings, forms, predictor, speeds,
                                     claims, budget, keep_s))

    # The paper's setting (the first variant) for every group first, then the kill-and-resume training,
    # then the other variants as long as the budget lasts.
    imagenet_variants = settings.imagenet_variants or settings.variants
    first, *rest = settings.variants
    timed_groups(*first, reserve + resume_reserve)
    if "resume" in sections:
        log(f"[gpu-check {budget.left():5.0f} s left] kill-and-resume training")
        workdir = Path(tempfile.mkdtemp(prefix="gpu-check-"))
        try:
            writer.add([resume_check(device, settings, budget, workdir)])
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    for dtype, channels_last in rest:
        timed_groups(dtype, channels_last, reserve)
    writer.add(agreement_rows(writer.frame()))
    write_text_atomic(markdown(writer.frame(), common, budget_s, time.perf_counter() - budget.start), md_path)
    log(f"[gpu-check] {time.perf_counter() - budget.start:.0f} s: {csv_path}, {md_path}")
    return csv_path


def report_only(csv_path: Path) -> Path:
    """The report of a run whose process ended before writing it (a timeout): agreement rows added to the
    CSV if it has none, then ``<csv stem>.md`` beside it. Returns the .md path."""
    frame = pd.read_csv(csv_path)
    if not (frame["section"] == "agreement").any():
        agreement = agreement_rows(frame)
        if agreement:
            append_rows_atomic([{"section": "agreement", **{k: frame[k].iloc[0] for k in ("device", "device_name",
                                 "torch_version", "suite_commit", "quick") if k in frame}, **row}
                                for row in agreement], csv_path)
            frame = pd.read_csv(csv_path)
    first = frame.iloc[0]
    common = {key: first.get(key, "") for key in ("device", "device_name", "torch_version", "cuda_version",
                                                  "cudnn_version", "suite_commit", "quick")}
    md_path = csv_path.with_suffix(".md")
    write_text_atomic(markdown(frame, common, math.nan, math.nan) + "\n(report written after the run, from its CSV)\n",
                      md_path)
    return md_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m replication.experiments.gpu_check",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: the code path, not a measurement (CI)")
    parser.add_argument("--out", help="output folder [results/manual/throughput; results/ci/throughput with --quick]")
    parser.add_argument("--budget-s", type=float, help="wall-clock budget in seconds [420; 100 with --quick]")
    parser.add_argument("--sections", default="speed,resume", help="comma-separated: speed, resume [both]")
    parser.add_argument("--report-only", metavar="CSV",
                        help="write the .md (and the agreement rows, if missing) from a CSV of a run that was cut "
                             "short, and exit")
    parser.add_argument("--train-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.train_child:
        train_child(json.loads(args.train_child))
        return 0
    if args.report_only:
        report_only(Path(args.report_only))
        return 0
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device (use --device cpu --quick for the CPU path)")
    out = Path(args.out or ("results/ci/throughput" if args.quick else layout.GPU_CHECK_DIR))
    budget = args.budget_s or (100.0 if args.quick else 420.0)
    sections = tuple(part.strip() for part in args.sections.split(",") if part.strip())
    unknown = set(sections) - {"speed", "resume"}
    if unknown:
        parser.error(f"unknown sections {', '.join(sorted(unknown))}: choose from speed, resume")
    path = run(args.device, quick=args.quick, out=out, budget_s=budget, sections=sections,
               log=lambda text: print(text, file=sys.stderr, flush=True))
    frame = pd.read_csv(path)
    resume = frame[frame["section"] == "resume"]
    failed = [] if resume.empty else [str(status) for status in resume["status"] if status != "ok"]
    if not resume.empty and not failed and not bool(resume["identical"].iloc[0]):
        failed.append("the resumed run is not bit-identical to the uninterrupted one")
    for reason in failed:
        print(f"gpu-check: {reason}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
