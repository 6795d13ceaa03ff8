"""A verdict for every claim of the ledger, computed from one profile's results CSVs alone.

Each verdict kind reads the CSV its claim names and applies the claim's rule:

- ``exact``: checked to a float tolerance (exactness, equal accuracy);
- ``reproduced`` / ``not reproduced``: the 95 % CI of the effect lies on the claim's side / the other;
- ``inconclusive``: the CI straddles the decision point, too few seeds, or an unstable timing;
- ``not run in this profile``: the profile did not produce the evidence (a dataset, ImageNet, a GPU).

The scope (dataset, resolution, width, epochs, device, seeds) is measured from the CSVs and reported
beside the verdict, never folded into it: "reproduced" on Fashion-MNIST at 1/8 width is a real result
about Fashion-MNIST at 1/8 width.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..stats import SeedSummary, difference_ci, summarize_seeds
from .ledger import Claim

EXACT, REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_RUN = (
    "exact", "reproduced", "not reproduced", "inconclusive", "not run in this profile")
VERDICTS = (EXACT, REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_RUN)
SMOKE = "smoke: not evidence"
NAN = float("nan")


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


def decide(ci_low: float, ci_high: float, threshold: float = 0.0, *, n: int | None = None,
           higher_is_claim: bool = True) -> str:
    """Reproduced when the CI lies beyond ``threshold`` on the claim's side, not reproduced when it
    lies beyond it on the other side, inconclusive otherwise (or with fewer than 2 seeds)."""
    if (n is not None and n < 2) or math.isnan(ci_low) or math.isnan(ci_high):
        return INCONCLUSIVE
    above, below = ci_low > threshold, ci_high < threshold
    if not higher_is_claim:
        above, below = below, above
    return REPRODUCED if above else NOT_REPRODUCED if below else INCONCLUSIVE


class Evidence:
    """One profile's results: its CSVs (``results/<profile>/``) and the workflow config that made them."""

    def __init__(self, results_dir: str | Path, config: dict[str, Any]) -> None:
        self.root = Path(results_dir)
        self.config = config
        self.datasets: list[str] = list(config.get("datasets", []))
        self.imagenet = bool(config.get("imagenet", False))

    def path(self, relative: str) -> Path:
        return self.root / relative

    def csv(self, relative: str) -> pd.DataFrame | None:
        path = self.path(relative)
        return pd.read_csv(path) if path.exists() else None

    def width(self, run: str) -> str:
        kwargs = self.config.get("runs", {}).get(run, {}).get("model_kwargs", {}) or {}
        widths = kwargs.get("channels") or kwargs.get("widths")
        return f"stage widths {'-'.join(map(str, widths))}" if widths else "paper width"

    def training_scope(self, rows: pd.DataFrame, runs: list[str]) -> str:
        first = rows.iloc[0]
        widths = sorted({self.width(run) for run in runs})
        return (f"{first['dataset']} {int(first['image_size'])}px, {int(first['train_samples'])} train / "
                f"{int(first['test_samples'])} test images, {'; '.join(widths)}, {int(first['epochs'])} epochs, "
                f"{first['device']}")


def _not_run(why: str) -> Verdict:
    return Verdict(NOT_RUN, note=why)


def _failed_note(seeds: pd.DataFrame, labels: dict[str, str]) -> str:
    if "did_not_train" not in seeds:
        return ""
    failed = seeds[seeds["did_not_train"].astype(bool)]
    if failed.empty:
        return ""
    names = ", ".join(f"{labels.get(r.run, r.run)} seed {int(r.seed)}" for r in failed.itertuples())
    return f"rests on runs that did not train (top-1 within 2 points of chance): {names}"


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


# --- kinds -------------------------------------------------------------------------------------

def _exactness(claim: Claim, evidence: Evidence) -> list[Verdict]:
    frame = evidence.csv("exactness/exactness.csv")
    if frame is None or (rows := frame[frame["claim_id"] == claim.id]).empty:
        return [_not_run("no exactness checks in this profile")]
    passed = bool(rows["passed"].all())
    failed = rows[~rows["passed"].astype(bool)]["check"].tolist()
    errors = rows[(rows["bound"] > 0) & (rows["bound"] < 1)]
    effect = float(errors["value"].max()) if len(errors) else float((rows["value"] - rows["bound"]).abs().max())
    dtypes = sorted({str(d) for d in rows["dtype"].dropna() if str(d)})
    return [Verdict(EXACT if passed else NOT_REPRODUCED, effect=effect,
                    scope=f"random BN statistics, {', '.join(dtypes) or 'integer counts'}, {rows['device'].iloc[0]}",
                    evidence="exactness/exactness.csv",
                    note=_join(f"{len(rows)} checks" + (", worst relative error shown" if len(errors) else
                                                         ", largest deviation from the expected count shown"),
                               f"failed: {'; '.join(failed)}" if failed else ""))]


def _counts(claim: Claim, evidence: Evidence) -> list[Verdict]:
    frame = evidence.csv("counts/counts_vs_paper.csv")
    if frame is None or (rows := frame[frame["table"] == claim.measure["table"]]).empty:
        return [_not_run("no counts in this profile")]
    tolerance = float(claim.measure.get("tolerance", 0.05))
    closest = rows[["rel_diff_train", "rel_diff_deploy"]].abs().min(axis=1)
    off = rows[closest > tolerance]
    listing = "; ".join(f"{r.dataset} {r.backbone} {r.quantity}: paper {r.paper}, ours {r.ours_train:.4g} (train) / "
                        f"{r.ours_deploy:.4g} (deploy)" + (f" ({r.explanation})" if isinstance(r.explanation, str)
                                                           and r.explanation else "")
                        for r in off.itertuples())
    return [Verdict(REPRODUCED if off.empty else NOT_REPRODUCED, effect=1.0 - len(off) / len(rows),
                    scope="analytic counts (convs + FC multiply-accumulates), no data",
                    evidence="counts/counts_vs_paper.csv",
                    note=_join(f"{len(rows) - len(off)} of {len(rows)} numbers within {tolerance:.0%}",
                               f"off: {listing}" if listing else ""))]


def _training_seeds(evidence: Evidence, experiment: str, dataset: str
                    ) -> tuple[pd.DataFrame, dict[str, str], str] | None:
    relative = f"{experiment}/{dataset}/seeds.csv"
    seeds, summary = evidence.csv(relative), evidence.csv(f"{experiment}/{dataset}/summary.csv")
    if seeds is None or summary is None:
        return None
    labels = dict(zip(summary["run"], summary["label"]))
    seeds = seeds.assign(label=seeds["run"].map(labels))
    return seeds, labels, relative


def _datasets_for(claim: Claim, evidence: Evidence) -> list[str]:
    if claim.requires == "imagenet":
        return ["imagenet"] if evidence.imagenet else []
    return evidence.datasets


def _accuracy_gap(claim: Claim, evidence: Evidence) -> list[Verdict]:
    datasets = _datasets_for(claim, evidence)
    if not datasets:
        return [_not_run(f"needs {claim.requires}, which this profile does not run")]
    a, b = claim.measure["a"], claim.measure["b"]
    verdicts = []
    for dataset in datasets:
        loaded = _training_seeds(evidence, claim.measure["experiment"], dataset)
        if loaded is None:
            verdicts.append(Verdict(NOT_RUN, dataset=dataset, note=f"no {claim.measure['experiment']} results"))
            continue
        seeds, labels, relative = loaded
        rows_a, rows_b = seeds[seeds["label"] == a], seeds[seeds["label"] == b]
        missing = [name for name, rows in ((a, rows_a), (b, rows_b)) if rows.empty]
        if missing:
            verdicts.append(Verdict(NOT_RUN, dataset=dataset, evidence=relative,
                                    note=f"{' and '.join(missing)} not trained in this profile"))
            continue
        diff = difference_ci(rows_a["top1"], rows_b["top1"])
        runs = [*rows_a["run"].unique(), *rows_b["run"].unique()]
        verdicts.append(Verdict(decide(diff.ci_low, diff.ci_high, n=diff.n), diff.mean, diff.ci_low, diff.ci_high,
                                diff.n, dataset, evidence.training_scope(pd.concat([rows_a, rows_b]), runs) +
                                f", {diff.n} seeds", relative,
                                _join(f"top-1 {a} {rows_a['top1'].mean():.2f}, {b} {rows_b['top1'].mean():.2f}",
                                      "too few seeds for a CI" if diff.n < 2 else "",
                                      _failed_note(pd.concat([rows_a, rows_b]), labels))))
    return verdicts


def _depth(claim: Claim, evidence: Evidence) -> list[Verdict]:
    family, tolerance = claim.measure["family"], float(claim.measure.get("tolerance", 1.0))
    shallow, deep = f"{family} {claim.measure['shallow']}", f"{family} {claim.measure['deep']}"
    verdicts = []
    for dataset in evidence.datasets:
        loaded = _training_seeds(evidence, "depth_study", dataset)
        if loaded is None:
            verdicts.append(Verdict(NOT_RUN, dataset=dataset, note="no depth-study results"))
            continue
        seeds, labels, relative = loaded
        rows_deep, rows_shallow = seeds[seeds["label"] == deep], seeds[seeds["label"] == shallow]
        if rows_deep.empty or rows_shallow.empty:
            verdicts.append(Verdict(NOT_RUN, dataset=dataset, evidence=relative,
                                    note=f"needs {shallow} and {deep}; this profile's depth study lacks one"))
            continue
        diff = difference_ci(rows_deep["top1"], rows_shallow["top1"])
        holds = claim.measure.get("expect", "holds") == "holds"
        verdict = decide(diff.ci_low, diff.ci_high, -tolerance, n=diff.n, higher_is_claim=holds)
        runs = [*rows_deep["run"].unique(), *rows_shallow["run"].unique()]
        verdicts.append(Verdict(verdict, diff.mean, diff.ci_low, diff.ci_high, diff.n, dataset,
                                evidence.training_scope(pd.concat([rows_deep, rows_shallow]), runs) +
                                f", {diff.n} seeds", relative,
                                _join(f"top-1({deep}) - top-1({shallow}); {shallow} {rows_shallow['top1'].mean():.2f}, "
                                      f"{deep} {rows_deep['top1'].mean():.2f}",
                                      _failed_note(pd.concat([rows_deep, rows_shallow]), labels))))
    return verdicts


def _speed_ratio(claim: Claim, evidence: Evidence) -> list[Verdict]:
    frame = evidence.csv("speed/pairs.csv")
    if frame is None or (rows := frame[frame["claim_id"] == claim.id]).empty:
        return [_not_run("no paired speed measurement in this profile")]
    row = rows.iloc[-1]
    if str(row.get("status", "ok")) != "ok":
        return [Verdict(INCONCLUSIVE, evidence="speed/pairs.csv", note=f"measurement failed: {row['status']}")]
    verdict = INCONCLUSIVE if bool(row["unstable"]) else decide(row["ratio_ci_low"], row["ratio_ci_high"], 1.0)
    scope = (f"{row['device_name']} ({row['device']}), {int(row['threads'])} threads, batch {int(row['batch_size'])}, "
             f"input {row['input_size']}, {row['dtype']}, untrained weights")
    return [Verdict(verdict, row["ratio"], row["ratio_ci_low"], row["ratio_ci_high"], NAN, "", scope, "speed/pairs.csv",
                    _join(f"{row['images_per_sec_a']:.0f} vs {row['images_per_sec_b']:.0f} images/s, "
                          f"{int(row['rounds'])} paired rounds", "unstable: CI wider than +-5 %" if row["unstable"]
                          else "", f"load average {row['load_start']:.1f} -> {row['load_end']:.1f}"))]


def _per_mobilenet_dataset(evidence: Evidence, judge_one: Callable[[pd.DataFrame, str], Verdict]) -> list[Verdict]:
    """``judge_one(rows, dataset)`` for each dataset with Table 2 results (``mobilenet/<dataset>.csv``)."""
    verdicts = []
    for dataset in evidence.datasets:
        frame = evidence.csv(f"mobilenet/{dataset}.csv")
        verdicts.append(Verdict(NOT_RUN, dataset=dataset, note="no MobileNet results") if frame is None
                        else judge_one(frame, dataset))
    return verdicts


def _equal_accuracy(claim: Claim, evidence: Evidence) -> list[Verdict]:
    tolerance = float(claim.measure.get("tolerance", 0.05))

    def judge_one(frame: pd.DataFrame, dataset: str) -> Verdict:
        top1 = frame.pivot_table(index="seed", columns="backbone", values="top1")
        diff = (top1[claim.measure["a"]] - top1[claim.measure["b"]]).abs()
        return Verdict(EXACT if bool((diff <= tolerance).all()) else NOT_REPRODUCED, float(diff.max()),
                       n_seeds=len(diff), dataset=dataset,
                       scope=f"{dataset}, {int(frame['image_size'].iloc[0])}px, "
                             f"{int(frame['test_samples'].iloc[0])} test images, {len(diff)} trained models",
                       evidence=f"mobilenet/{dataset}.csv",
                       note=f"largest |top-1 difference| over seeds (bound {tolerance})")
    return _per_mobilenet_dataset(evidence, judge_one)


def _mobilenet_gap(claim: Claim, evidence: Evidence) -> list[Verdict]:
    def judge_one(frame: pd.DataFrame, dataset: str) -> Verdict:
        a = frame[frame["backbone"] == claim.measure["a"]]["top1"]
        b = frame[frame["backbone"] == claim.measure["b"]]["top1"]
        diff = difference_ci(a, b)
        return Verdict(decide(diff.ci_low, diff.ci_high, n=diff.n), diff.mean, diff.ci_low, diff.ci_high, diff.n,
                       dataset, f"{dataset}, {int(frame['image_size'].iloc[0])}px, paper width, {diff.n} seeds",
                       f"mobilenet/{dataset}.csv",
                       f"top-1 {claim.measure['a']} {a.mean():.2f}, {claim.measure['b']} {b.mean():.2f}")
    return _per_mobilenet_dataset(evidence, judge_one)


def matched_difference(frame: pd.DataFrame, x: str) -> float:
    """RMNet top-1 minus ResNet top-1 interpolated at RMNet's ``x`` values, over the x range both
    methods cover; NaN when the ranges do not overlap."""
    rmnet = frame[frame["method"].str.startswith("RMNet")].sort_values(x)
    resnet = frame[frame["method"].str.startswith("ResNet")].sort_values(x)
    if rmnet.empty or resnet.empty:
        return NAN
    low, high = max(rmnet[x].min(), resnet[x].min()), min(rmnet[x].max(), resnet[x].max())
    inside = rmnet[(rmnet[x] >= low) & (rmnet[x] <= high)]
    if inside.empty:
        return NAN
    resnet_at = np.interp(inside[x], resnet[x], resnet["top1"])
    return float(np.mean(inside["top1"].to_numpy() - resnet_at))


def _pruning(claim: Claim, evidence: Evidence) -> list[Verdict]:
    x = claim.measure["x"]
    verdicts = []
    for dataset in evidence.datasets:
        frame = evidence.csv(f"pruning/{dataset}.csv")
        if frame is None:
            verdicts.append(Verdict(NOT_RUN, dataset=dataset, note="no pruning results"))
            continue
        per_seed = [matched_difference(rows, x) for _, rows in frame.groupby("seed")]
        overlapping = [d for d in per_seed if not math.isnan(d)]
        summary = summarize_seeds(overlapping)
        note = f"x = {x}; thresholds {', '.join(f'{t:g}' for t in sorted(frame['threshold'].unique()))}; no fine-tuning"
        if not overlapping:
            verdicts.append(Verdict(INCONCLUSIVE, dataset=dataset, evidence=f"pruning/{dataset}.csv",
                                    note=_join(note, "the two methods' x ranges do not overlap")))
            continue
        verdicts.append(Verdict(decide(summary.ci_low, summary.ci_high, n=summary.n), summary.mean, summary.ci_low,
                                summary.ci_high, summary.n, dataset,
                                f"{dataset} {int(frame['input_size'].iloc[0].split('x')[-1])}px, "
                                f"{int(frame['test_samples'].iloc[0])} test images, {frame['device_name'].iloc[0]}, "
                                f"batch {int(frame['batch_size'].iloc[0])}, {summary.n} seeds",
                                f"pruning/{dataset}.csv",
                                _join(note, f"{len(per_seed) - len(overlapping)} seed(s) without overlap"
                                      if len(overlapping) < len(per_seed) else "")))
    return verdicts


def _ablation_trend(claim: Claim, evidence: Evidence) -> list[Verdict]:
    frame = evidence.csv("ablation/speed.csv")
    factor = claim.measure["factor"]
    if frame is None or (rows := frame[frame["factor"] == factor].sort_values("value")).empty:
        return [_not_run(f"no {factor} sweep in this profile")]
    if len(rows) < 2:
        return [Verdict(INCONCLUSIVE, evidence="ablation/speed.csv", note=f"one {factor} value only")]
    small, large = rows.iloc[0], rows.iloc[-1]
    unstable = bool(rows["unstable"].astype(bool).any()) if "unstable" in rows else False
    verdict = INCONCLUSIVE if unstable or "speedup_ci_low" not in rows else (
        REPRODUCED if small["speedup_ci_low"] > large["speedup_ci_high"] else
        NOT_REPRODUCED if small["speedup_ci_high"] < large["speedup_ci_low"] else INCONCLUSIVE)
    curve = ", ".join(f"{int(r.value)}: {r.speedup:.2f}" for r in rows.itertuples())
    return [Verdict(verdict, small["speedup"] - large["speedup"], dataset="",
                    scope=f"{small['device_name']} ({small['device']}), {int(small['threads'])} threads, "
                          f"{small['model']}, input {small['input_size']}, untrained weights",
                    evidence="ablation/speed.csv",
                    note=_join(f"speed-up (RMNet / ResNet form) by {factor}: {curve}; effect = smallest - largest",
                               "some ratios unstable" if unstable else ""))]


def _finetune(claim: Claim, evidence: Evidence) -> list[Verdict]:
    """One verdict per dataset and base network (``finetune/<dataset>/<base>/<mode>/seed<k>/metrics.csv``)."""
    a, b = claim.measure["a"], claim.measure["b"]
    verdicts = []
    for dataset in evidence.datasets:
        for base in evidence.config["experiments"]["finetune"]["bases"]:
            root = evidence.path(f"finetune/{dataset}/{base}")
            label = evidence.config["runs"][base]["label"]
            finals: dict[str, dict[int, float]] = {}
            start: dict[int, float] = {}
            for path in sorted(root.glob("*/seed*/metrics.csv")):
                metrics = pd.read_csv(path)
                mode, seed = path.parent.parent.name, int(path.parent.name.removeprefix("seed"))
                finals.setdefault(mode, {})[seed] = float(metrics["top1"].iloc[-1])
                if mode == a and (metrics["epoch"] == 0).any():
                    start[seed] = float(metrics.loc[metrics["epoch"] == 0, "top1"].iloc[0])
            other = start if b == "start" else finals.get(b, {})
            seeds = sorted(set(finals.get(a, {})) & set(other))
            if not seeds:
                verdicts.append(Verdict(NOT_RUN, dataset=dataset, scope=label, note="no fine-tuning results"))
                continue
            diff: SeedSummary = summarize_seeds([finals[a][s] - other[s] for s in seeds])
            sample = pd.read_csv(next(root.glob(f"{a}/seed*/metrics.csv")))
            verdicts.append(Verdict(decide(diff.ci_low, diff.ci_high, n=diff.n), diff.mean, diff.ci_low, diff.ci_high,
                                    diff.n, dataset,
                                    f"{label} {evidence.width(base)}, {dataset} {int(sample['image_size'].iloc[0])}px, "
                                    f"{int(sample['train_samples'].iloc[0])} train images, "
                                    f"{int(sample['epoch'].max())} fine-tuning epochs, {sample['device'].iloc[0]}, "
                                    f"{diff.n} seeds", f"finetune/{dataset}/{base}/",
                                    f"paired by seed (same base model); {a} final minus "
                                    f"{'epoch 0' if b == 'start' else b + ' final'}"))
    return verdicts


KINDS: dict[str, Callable[[Claim, Evidence], list[Verdict]]] = {
    "exactness": _exactness, "counts": _counts, "accuracy_gap": _accuracy_gap, "depth": _depth,
    "speed_ratio": _speed_ratio, "equal_accuracy": _equal_accuracy, "mobilenet_gap": _mobilenet_gap,
    "pruning": _pruning, "ablation_trend": _ablation_trend, "finetune": _finetune,
}


def judge(claims: list[Claim], evidence: Evidence, *, smoke: bool = False) -> pd.DataFrame:
    """One row per claim (per dataset where the claim is per dataset), in ledger order."""
    rows = []
    for claim in claims:
        if claim.kind not in KINDS:
            raise ValueError(f"claim {claim.id!r}: unknown measure kind {claim.kind!r}; known: {', '.join(KINDS)}")
        throughput_device = str(evidence.config.get("throughput", {}).get("device", ""))
        if claim.requires == "cuda" and not throughput_device.startswith("cuda"):
            verdicts = [_not_run("needs a GPU")]
        else:
            verdicts = KINDS[claim.kind](claim, evidence)
        for verdict in verdicts:
            rows.append({"id": claim.id, "source": claim.source, "statement": claim.statement,
                         "verdict": verdict.verdict, "standing": SMOKE if smoke else "evidence",
                         "effect": verdict.effect, "ci_low": verdict.ci_low, "ci_high": verdict.ci_high,
                         "n_seeds": verdict.n_seeds, "paper": claim.paper, "dataset": verdict.dataset,
                         "scope": verdict.scope, "evidence_csv": verdict.evidence, "rule": claim.rule,
                         "note": verdict.note, "profile": evidence.config.get("profile", "")})
    return pd.DataFrame(rows)
