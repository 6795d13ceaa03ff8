"""The paper's figures regenerated from results CSVs alone (PNG and PDF, matplotlib)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


def _plt():
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


def depth_study(summary_csv: str | os.PathLike, stem: str | os.PathLike) -> list[Path]:
    """Figure 5: top-1 vs depth, ResNet (= RMNet after RM, same accuracy) vs RepVGG, per dataset."""
    plt = _plt()
    frame = pd.read_csv(summary_csv)
    frame["family"] = frame["label"].str.extract(r"^(\w+)")[0]
    frame["depth"] = frame["label"].str.extract(r"(\d+)$")[0].astype(int)
    datasets = sorted(frame["dataset"].unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        for family, rows in frame[frame["dataset"] == dataset].groupby("family"):
            rows = rows.sort_values("depth")
            label = "ResNet / RMNet" if family == "ResNet" else family
            ax.plot(rows["depth"], rows["top1"], marker="o", label=label)
        ax.set(xlabel="depth", ylabel="top-1 (%)", title=f"{dataset} ({_profile_title(frame)})")
        ax.legend()
    fig.tight_layout()
    return _save(fig, stem)


def pruning(csv: str | os.PathLike, stem: str | os.PathLike) -> list[Path]:
    """Figure 6: accuracy vs speed and vs pruned-parameter ratio, ResNet 18 vs RMNet 18."""
    plt = _plt()
    frame = pd.read_csv(csv)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for method, rows in frame.groupby("method"):
        rows = rows.sort_values("threshold")
        left.plot(rows["images_per_sec"], rows["top1"], marker="o", label=method)
        right.plot(100 * rows["pruned_params_ratio"], rows["top1"], marker="o", label=method)
    device = frame["device"].iloc[0] if len(frame) else ""
    left.set(xlabel=f"speed (images/s, {device}, batch {frame['batch_size'].iloc[0] if len(frame) else ''})",
             ylabel="top-1 (%)", title=_profile_title(frame))
    right.set(xlabel="pruned params ratio (%)", ylabel="top-1 (%)", title=_profile_title(frame))
    left.legend()
    right.legend()
    fig.tight_layout()
    return _save(fig, stem)


def ablation(csv: str | os.PathLike, stem: str | os.PathLike) -> list[Path]:
    """Figure 7: speed-up of RMNet over its ResNet form (top) and both speeds (bottom) per factor."""
    plt = _plt()
    frame = pd.read_csv(csv)
    factors = list(dict.fromkeys(frame["factor"]))
    fig, axes = plt.subplots(2, len(factors), figsize=(4 * len(factors), 6), squeeze=False)
    for column, factor in enumerate(factors):
        rows = frame[frame["factor"] == factor].sort_values("value")
        axes[0][column].plot(rows["value"], rows["speedup"], marker="o")
        axes[0][column].axhline(1.0, color="grey", linewidth=0.8)
        axes[0][column].set(title=factor, ylabel="RMNet / ResNet speed")
        axes[1][column].plot(rows["value"], rows["ips_resnet_form"], marker="o", label="ResNet")
        axes[1][column].plot(rows["value"], rows["ips_rmnet"], marker="s", label="RMNet")
        axes[1][column].set(xlabel=factor, ylabel="images/s")
        axes[1][column].legend()
    device = frame["device_name"].iloc[0] if len(frame) else ""
    fig.suptitle(f"{device}; {_profile_title(frame)}")
    fig.tight_layout()
    return _save(fig, stem)


def _seed_curves(paths: list[str]) -> pd.DataFrame:
    """Mean and 95 % CI of top-1 per epoch over the seeds' metrics files."""
    from ..stats import summarize_seeds

    frame = pd.concat([pd.read_csv(path) for path in paths], ignore_index=True)
    rows = []
    for epoch, group in frame.groupby("epoch"):
        summary = summarize_seeds(group["top1"])
        rows.append({"epoch": epoch, "mean": summary.mean, "low": summary.ci_low, "high": summary.ci_high,
                     "n": summary.n, "profile": group["profile"].iloc[0] if "profile" in group else ""})
    return pd.DataFrame(rows)


def finetune(curves: dict[str, list[str]], base_metrics: list[str], stem: str | os.PathLike) -> list[Path]:
    """Figure 9: top-1 per fine-tuning epoch (epoch 0: the converted model before any step), with BN
    and without BN, mean and 95 % CI over seeds, against the base runs' final accuracy."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    profile = ""
    for label, paths in curves.items():
        frame = _seed_curves(paths)
        profile = f"{_profile_title(frame)}, {int(frame['n'].max())} seed(s)"
        line, = ax.plot(frame["epoch"], frame["mean"], marker="o", label=label)
        ax.fill_between(frame["epoch"], frame["low"], frame["high"], color=line.get_color(), alpha=0.2)
    base = [float(pd.read_csv(path)["top1"].iloc[-1]) for path in base_metrics]
    ax.axhline(sum(base) / len(base), color="black", linestyle="--",
               label="trained ResNet before conversion (mean over seeds)")
    ax.set(xlabel="fine-tuning epoch", ylabel="top-1 (%)", title=profile)
    ax.legend()
    fig.tight_layout()
    return _save(fig, stem)
