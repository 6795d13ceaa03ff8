"""The paper's figures regenerated from results CSVs alone (PNG and PDF, matplotlib)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..stats import summarize_seeds


def _plt():
    # matplotlib loads with the first figure, after choosing its file-only backend (no display needed).
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, stem: str | os.PathLike) -> list[Path]:
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        fig.savefig(path, dpi=150)
    _plt().close(fig)
    return paths


def _profile_title(frame: pd.DataFrame) -> str:
    profiles = sorted(map(str, frame["profile"].dropna().unique())) if "profile" in frame else []
    return f"profile: {', '.join(profiles)}" if profiles else ""


PAPER_DEPTH_133 = {"RMNet / ResNet": 79.57, "RepVGG": 41.38}   # section 4.1, CIFAR-100
DEPTHS = (21, 37, 69, 133)
ABLATION_TITLES = {"batch_size": "Batch Size", "width": "Basic Width", "expand_ratio": "Multiply Times",
                   "group_width": "Channels/Group"}


def _errorbar(ax, x, mean, low, high, **kwargs):
    """Mean with its 95 % CI as error bars (bars omitted where the CI is undefined: one seed)."""
    mean, low, high = (np.asarray(v, dtype=float) for v in (mean, low, high))
    yerr = np.vstack([mean - low, high - mean])
    yerr = np.where(np.isnan(yerr), 0.0, yerr)
    return ax.errorbar(x, mean, yerr=yerr, capsize=3, **kwargs)


def _mark_did_not_train(ax, x, y, failed) -> None:
    for xi, yi, bad in zip(x, y, failed):
        if bad:
            ax.plot([xi], [yi], marker="x", color="red", markersize=10, zorder=5)
            ax.annotate("did not train", (xi, yi), textcoords="offset points", xytext=(4, 6), color="red",
                        fontsize=8)


def depth_study(summary_csv: str | os.PathLike, stem: str | os.PathLike) -> list[Path]:
    """Figure 5: top-1 vs depth (21 to 133), ResNet (= RMNet after RM, same accuracy) vs RepVGG, one
    panel per dataset with the mean and 95 % CI over seeds, and a panel with the paper's reported
    CIFAR-100 values at depth 133. Runs that did not train are marked as such."""
    plt = _plt()
    frame = pd.read_csv(summary_csv)
    frame["family"] = frame["label"].str.extract(r"^(\w+)")[0]
    frame["depth"] = frame["label"].str.extract(r"(\d+)$")[0].astype(int)
    datasets = sorted(frame["dataset"].unique())
    fig, axes = plt.subplots(1, len(datasets) + 1, figsize=(5 * (len(datasets) + 1), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        rows_all = frame[frame["dataset"] == dataset]
        for family, rows in rows_all.groupby("family"):
            rows = rows.sort_values("depth")
            label = "ResNet / RMNet" if family == "ResNet" else family
            _errorbar(ax, rows["depth"], rows["top1"], rows["top1_ci_low"], rows["top1_ci_high"], marker="o",
                      label=label)
            _mark_did_not_train(ax, rows["depth"], rows["top1"], rows["did_not_train"].astype(bool))
        chance = float(rows_all["chance_top1"].iloc[0])
        ax.axhline(chance, color="grey", linestyle=":", linewidth=1, label="chance")
        seeds = int(rows_all["n_seeds"].max())
        ax.set(xlabel="Depth", ylabel="top-1 (%)", xlim=(10, 140), xticks=DEPTHS,
               title=f"{dataset}, {int(rows_all['epochs'].iloc[0])} epochs, {seeds} seeds ({_profile_title(frame)})")
        ax.legend()
    paper_ax = axes[0][-1]
    for index, (label, value) in enumerate(PAPER_DEPTH_133.items()):
        paper_ax.plot([133], [value], marker="o" if index == 0 else "s", linestyle="none", label=label)
    paper_ax.set(xlabel="Depth", ylabel="top-1 (%)", xlim=(10, 140), xticks=DEPTHS, ylim=(0, 100),
                 title="paper: CIFAR-100, depth 133 (section 4.1)")
    paper_ax.legend()
    fig.tight_layout()
    return _save(fig, stem)


def _pruning_curves(frame: pd.DataFrame, x: str) -> pd.DataFrame:
    rows = []
    for (method, threshold), group in frame.groupby(["method", "threshold"]):
        top1 = summarize_seeds(group["top1"])
        rows.append({"method": method, "threshold": threshold, "x": group[x].mean(), "x_std": group[x].std(),
                     "mean": top1.mean, "low": top1.ci_low, "high": top1.ci_high})
    return pd.DataFrame(rows).sort_values(["method", "x"])


def pruning(csv: str | os.PathLike, stem: str | os.PathLike) -> list[Path]:
    """Figure 6: top-1 (mean and 95 % CI over seeds) vs speed and vs pruned-parameter ratio (0-100 %),
    RMNet 18 (RM + slimming) vs ResNet 18 (same threshold rule, residual constraint), no fine-tuning.
    Speed is the paired ratio of each pruned network over the unpruned ResNet, on this profile's device."""
    plt = _plt()
    frame = pd.read_csv(csv)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    speed = "speedup_vs_unpruned_ratio" if "speedup_vs_unpruned_ratio" in frame else "images_per_sec"
    for ax, x, scale in ((left, speed, 1.0), (right, "pruned_params_ratio", 100.0)):
        for method, rows in _pruning_curves(frame, x).groupby("method"):
            _errorbar(ax, scale * rows["x"], rows["mean"], rows["low"], rows["high"], marker="o", label=method)
    if "top1_unpruned" in frame:
        for ax in (left, right):
            ax.axhline(frame["top1_unpruned"].mean(), color="black", linestyle="--", linewidth=1,
                       label="trained ResNet 18, unpruned")
            ax.axhline(10.0, color="grey", linestyle=":", linewidth=1, label="chance")
    if "speedup_vs_unpruned_unstable" in frame:  # a wide speed CI is never shown as a clean point
        unstable = frame["speedup_vs_unpruned_unstable"].astype(str).str.lower().isin(["true", "1"])
        if unstable.any():
            left.text(0.02, 0.02, f"{int(unstable.sum())} of {len(frame)} speed ratios unstable (CI wider than +-5 %)",
                      transform=left.transAxes, fontsize=7, color="firebrick")
    device = frame["device_name"].iloc[0] if "device_name" in frame else frame["device"].iloc[0]
    seeds = frame["seed"].nunique() if "seed" in frame else 1
    left.set(xlabel=f"speed relative to the unpruned ResNet 18 ({device}, batch {frame['batch_size'].iloc[0]})",
             ylabel="top-1 (%)", title=f"(a) accuracy vs speed; {seeds} seeds, {_profile_title(frame)}")
    # The paper's axis is 0-100 %; RM's plain network starts larger than the ResNet, so lightly pruned
    # RMNet points have negative ratios and the axis extends to show them.
    right.set(xlabel="Pruned Params Ratio (%)", ylabel="top-1 (%)",
              xlim=(min(0.0, 100 * frame["pruned_params_ratio"].min() - 5), 100),
              title=f"(b) accuracy vs pruned params; {seeds} seeds, {_profile_title(frame)}")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, stem)


def ablation(csv: str | os.PathLike, stem: str | os.PathLike) -> list[Path]:
    """Figure 7: speed-up of RMNet over its ResNet form (top, paired ratio with 95 % CI) and both
    speeds (bottom) per factor, under the paper's panel titles."""
    plt = _plt()
    frame = pd.read_csv(csv)
    factors = list(dict.fromkeys(frame["factor"]))
    fig, axes = plt.subplots(2, len(factors), figsize=(4 * len(factors), 6), squeeze=False)
    for column, factor in enumerate(factors):
        rows = frame[frame["factor"] == factor].sort_values("value")
        title = ABLATION_TITLES.get(factor, factor)
        top = axes[0][column]
        if "speedup_ci_low" in rows:
            _errorbar(top, rows["value"], rows["speedup"], rows["speedup_ci_low"], rows["speedup_ci_high"], marker="o")
            for r in rows[rows["unstable"].astype(bool)].itertuples():
                top.annotate("unstable", (r.value, r.speedup), textcoords="offset points", xytext=(3, 5),
                             color="red", fontsize=8)
        else:
            top.plot(rows["value"], rows["speedup"], marker="o")
        top.axhline(1.0, color="grey", linewidth=0.8)
        top.set(title=title, ylabel="speed-up (RMNet / ResNet)")
        bottom = axes[1][column]
        bottom.plot(rows["value"], rows["ips_resnet_form"], marker="o", label="ResNet")
        bottom.plot(rows["value"], rows["ips_rmnet"], marker="s", label="RMNet")
        bottom.set(xlabel=title, ylabel="images/s")
        bottom.legend()
    device = frame["device_name"].iloc[0] if len(frame) else ""
    fig.suptitle(f"{device}, {int(frame['threads'].iloc[0])} threads; {_profile_title(frame)}")
    fig.tight_layout()
    return _save(fig, stem)


def _seed_curves(paths: list[str]) -> pd.DataFrame:
    """Mean and 95 % CI of top-1 per epoch over the seeds' metrics files."""
    frame = pd.concat([pd.read_csv(path) for path in paths], ignore_index=True)
    rows = []
    for epoch, group in frame.groupby("epoch"):
        summary = summarize_seeds(group["top1"])
        rows.append({"epoch": epoch, "mean": summary.mean, "low": summary.ci_low, "high": summary.ci_high,
                     "n": summary.n, "profile": group["profile"].iloc[0] if "profile" in group else ""})
    return pd.DataFrame(rows)


def finetune(curves: dict[str, dict[str, list[str]]], base_metrics: dict[str, list[str]],
             stem: str | os.PathLike) -> list[Path]:
    """Figure 9, one panel per base network (the paper's ResNet 18 and 34): top-1 per fine-tuning epoch
    (epoch 0: the converted model before any step), with BN and without BN, mean and 95 % CI over seeds,
    against the base runs' final accuracy.

    ``curves`` maps a panel title to {curve label: per-seed metrics CSVs}; ``base_metrics`` maps the same
    titles to the base runs' per-seed metrics CSVs."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4), squeeze=False)
    for ax, (title, panel) in zip(axes[0], curves.items()):
        scope = ""
        for label, paths in panel.items():
            frame = _seed_curves(paths)
            scope = _profile_title(frame)
            line, = ax.plot(frame["epoch"], frame["mean"], marker="o",
                            label=f"{label} ({int(frame['n'].max())} seed(s))")
            ax.fill_between(frame["epoch"], frame["low"], frame["high"], color=line.get_color(), alpha=0.2)
        base = [float(pd.read_csv(path)["top1"].iloc[-1]) for path in base_metrics[title]]
        ax.axhline(sum(base) / len(base), color="black", linestyle="--",
                   label=f"trained {title} before conversion (mean over seeds)")
        ax.set(xlabel="fine-tuning epoch", ylabel="top-1 (%)", title=f"{title}: {scope}")
        ax.legend(fontsize="small")
    fig.tight_layout()
    return _save(fig, stem)
