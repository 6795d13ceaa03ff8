"""What a verdict is and where its evidence comes from: one profile's results CSVs and its config."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .ledger import Claim
from .rules import NOT_RUN

SMOKE = "smoke: not evidence"
NAN = float("nan")
DATASET_REQUIREMENTS = ("imagenet", "cifar10", "cifar100")


@dataclass
class Verdict:
    verdict: str
    effect: float = NAN
    ci_low: float = NAN
    ci_high: float = NAN
    n_seeds: float = NAN
    dataset: str = ""
    scope: str = ""
    evidence: str = ""
    note: str = ""
    device: str = ""   # where a speed verdict was measured (cpu / cuda), so a GPU verdict sits beside a CPU one


class Evidence:
    """One profile's results: its CSVs (``results/<profile>/``) and the workflow config that made them."""

    def __init__(self, results_dir: str | Path, config: dict[str, Any], gpu_dir: str | Path | None = None) -> None:
        self.root = Path(results_dir)
        self.config = config
        self.datasets: list[str] = list(config.get("datasets", []))
        self.imagenet = bool(config.get("imagenet", False))
        self.gpu_dir = Path(gpu_dir) if gpu_dir is not None else None
        self._frames: dict[str, pd.DataFrame | None] = {}  # each CSV is read once per judgement

    @property
    def ablation_sweeps(self) -> dict[str, list[int]]:
        """The Fig. 7 sweeps this profile configures (``ablation.sweeps``: factor -> values); empty when none."""
        return dict(self.config.get("ablation", {}).get("sweeps", {}) or {})

    def path(self, relative: str) -> Path:
        return self.root / relative

    def csv(self, relative: str) -> pd.DataFrame | None:
        """``results/<profile>/<relative>`` (None when missing or empty); a copy, so a caller may change it."""
        if relative not in self._frames:
            path = self.path(relative)
            self._frames[relative] = pd.read_csv(path) if path.exists() and path.stat().st_size else None
        frame = self._frames[relative]
        return None if frame is None else frame.copy()

    @functools.cached_property
    def gpu_ratios(self) -> pd.DataFrame | None:
        """The GPU check's ratio rows (``<gpu_dir>/gpu-*.csv`` with ``claim_id`` and ``ratio``), read once."""
        if self.gpu_dir is None or not self.gpu_dir.is_dir():
            return None
        frames = [pd.read_csv(path) for path in sorted(self.gpu_dir.glob("gpu-*.csv")) if path.stat().st_size]
        frames = [f for f in frames if "claim_id" in f and "ratio" in f]
        return pd.concat(frames, ignore_index=True) if frames else None

    def absent(self, relative: str, configured: bool, how: str) -> str:
        """Why a results file is not there: the profile does not configure it (``how`` says what would), or it
        does and the run that wrote this folder stopped before that step."""
        if configured:
            return (f"{self.root / relative} is missing although this profile configures it: the run that made "
                    f"these results stopped before that step; `snakemake --cores 2 --configfile "
                    f"config/{self.config.get('results_name', 'evidence')}.yaml` makes it")
        return how

    def width(self, run: str) -> str:
        kwargs = self.config.get("runs", {}).get(run, {}).get("model_kwargs", {}) or {}
        widths = kwargs.get("channels") or kwargs.get("widths")
        return f"stage widths {'-'.join(map(str, widths))}" if widths else "paper width"

    def training_scope(self, rows: pd.DataFrame, runs: list[str]) -> str:
        first = rows.iloc[0]
        widths = sorted({self.width(run) for run in runs})
        device = str(first.get("device_name", "") or "")
        device = f"{first['device']} ({device})" if device and device != "nan" else str(first["device"])
        return (f"{first['dataset']} {int(first['image_size'])}px, {int(first['train_samples'])} train / "
                f"{int(first['test_samples'])} test images, {'; '.join(widths)}, {int(first['epochs'])} epochs, "
                f"{device}")


def not_run(why: str, dataset: str = "") -> Verdict:
    return Verdict(NOT_RUN, dataset=dataset, note=why)


# --- kinds -------------------------------------------------------------------------------------

def training_seeds(evidence: Evidence, experiment: str, dataset: str
                    ) -> tuple[pd.DataFrame, dict[str, str], str] | None:
    relative = f"{experiment}/{dataset}/seeds.csv"
    seeds, summary = evidence.csv(relative), evidence.csv(f"{experiment}/{dataset}/summary.csv")
    if seeds is None or summary is None:
        return None
    labels = dict(zip(summary["run"], summary["label"]))
    seeds = seeds.assign(label=seeds["run"].map(labels))
    return seeds, labels, relative


def datasets_for(claim: Claim, evidence: Evidence) -> list[str]:
    if claim.requires == "imagenet":
        return ["imagenet"] if evidence.imagenet else []
    if claim.requires in DATASET_REQUIREMENTS:
        return [claim.requires] if claim.requires in evidence.datasets else []
    return evidence.datasets
