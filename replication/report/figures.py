"""The paper's figures regenerated from results CSVs alone (PNG and PDF, matplotlib)."""

from __future__ import annotations

import inspect
import json
import os
import textwrap
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import stats
from ..data.specs import DATASETS, dataset_spec
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
DEPTHS = (21, 37, 69, 133)   # the paper's depths (Fig. 5): lines join only neighbours among these
ABLATION_TITLES = {"batch_size": "Batch Size", "width": "Basic Width", "expand_ratio": "Multiply Times",
                   "group_width": "Channels/Group"}
# One colour per family in every figure and panel (matplotlib's tab10, fixed by family, never by order).
FAMILY_COLOURS = {"ResNet": "#1f77b4", "RepVGG": "#ff7f0e", "RMNet": "#2ca02c", "DiracNet": "#d62728",
                  "ResDistill": "#9467bd", "MobileNetV2": "#8c564b", "MobileNetV1": "#e377c2",
                  "RMNetV1": "#17becf", "VGG": "#bcbd22"}
OTHER_COLOURS = ("#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173")
FAILED_MARKER = "x"          # a seed / point that did not train (at chance): never a filled marker
SEED_MARKER = "o"            # one small hollow circle per seed
MIN_SEEDS_FOR_CI = 3         # a mean over fewer trained seeds is drawn without an interval


def family(label: str) -> str:
    """A row's family: the label's first word (``RMNet 18 (RM + slimming)`` -> ``RMNet``)."""
    return str(label).split()[0] if str(label).split() else str(label)


def family_colour(name: str) -> str:
    """The fixed colour of a family (a label's first word); families outside the map get a colour
    derived from their name, the same in every figure."""
    name = family(name)
    if name in FAMILY_COLOURS:
        return FAMILY_COLOURS[name]
    return OTHER_COLOURS[zlib.crc32(name.encode()) % len(OTHER_COLOURS)]


def did_not_train(top1: float, num_classes: int, test_loss: float | None = None) -> bool:
    """Whether a run (or a pruned network) did not train, by the suite's one rule,
    :func:`replication.stats.did_not_train`, on the run's own numbers: every figure decides here."""
    rule: Any = stats.did_not_train  # Any: its signature gains test_loss with the loss rule (issue 20)
    if test_loss is not None and test_loss == test_loss and "test_loss" in inspect.signature(rule).parameters:
        return bool(rule(top1, num_classes, test_loss=test_loss))
    return bool(rule(top1, num_classes))


def _clip(values, low: float = 0.0, high: float = 100.0) -> np.ndarray:
    return np.clip(np.asarray(values, dtype=float), low, high)


def _errorbar(ax, x, mean, low, high, *, bounds: tuple[float, float] = (0.0, 100.0), **kwargs):
    """Mean with its 95 % CI as error bars, the interval clipped to what the quantity can be (``bounds``:
    accuracy in [0, 100], a speed ratio above 0); no bar where the CI is undefined (too few seeds)."""
    mean, low, high = (np.asarray(v, dtype=float) for v in (mean, low, high))
    low, high = np.clip(low, *bounds), np.clip(high, *bounds)
    yerr = np.vstack([mean - low, high - mean])
    yerr = np.where(np.isnan(yerr), 0.0, np.maximum(yerr, 0.0))
    return ax.errorbar(x, mean, yerr=yerr, capsize=3, **kwargs)


def _kwargs_text(frame: pd.DataFrame) -> str:
    """The networks' widths from the rows' ``model_kwargs`` (JSON), when the rows carry them."""
    if "model_kwargs" not in frame:
        return ""
    widths = set()
    for text in frame["model_kwargs"].dropna().unique():
        try:
            kwargs = json.loads(text)
        except (TypeError, ValueError):
            continue
        for key in ("widths", "channels"):
            if key in kwargs:
                widths.add("-".join(str(v) for v in kwargs[key]))
    return f"widths {', '.join(sorted(widths))}" if widths else ""


def _values(frame: pd.DataFrame, column: str, fmt: str = "{}") -> str:
    if column not in frame:
        return ""
    values = sorted({str(v) for v in frame[column].dropna().unique()})
    return ", ".join(fmt.format(v) for v in values)


def scope(frame: pd.DataFrame, seeds: Iterable[Any] = ()) -> str:
    """The setting the figure's numbers come from, built from its rows: dataset, image size, widths,
    epochs, training samples, device, seeds and profile."""
    parts = [_values(frame, "dataset")]
    if "image_size" in frame:
        parts.append(_values(frame, "image_size", "{} px"))
    elif "input_size" in frame:
        parts.append(_values(frame, "input_size", "input {}"))
    parts.append(_kwargs_text(frame))
    if "epochs" in frame:
        parts.append(_values(frame, "epochs", "{} epochs"))
    if "train_samples" in frame:
        parts.append(_values(frame, "train_samples", "{} training images"))
    device = _values(frame, "device_name") or _values(frame, "device")
    parts.append(device)
    seed_list = sorted({int(s) for s in seeds})
    if seed_list:
        parts.append(f"seeds {' '.join(map(str, seed_list))}")
    parts.append(_profile_title(frame))
    return "; ".join(part for part in parts if part)


def _seed_rows(summary: pd.DataFrame, seeds: pd.DataFrame | None) -> pd.DataFrame:
    """One row per (run, seed) with top1, test_loss (NaN when unknown), num_classes, dataset and the
    run's label: from the seeds CSV, else from the summary's ``seeds`` / ``top1_per_seed`` columns."""
    labels = summary.set_index(["run", "dataset"])["label"].to_dict()
    if seeds is not None and len(seeds):
        rows = seeds.copy()
        rows["label"] = [labels.get((run, dataset), run) for run, dataset in zip(rows["run"], rows["dataset"])]
        if "test_loss" not in rows:
            rows["test_loss"] = float("nan")
        return rows
    records = []
    for row in summary.itertuples():
        seed_ids = str(getattr(row, "seeds", "")).split()
        values = str(getattr(row, "top1_per_seed", "")).split()
        if len(seed_ids) != len(values):  # no per-seed record: the mean stands for its seeds
            seed_ids, values = ["0"], [str(row.top1)]
        for seed, value in zip(seed_ids, values):
            records.append({"run": row.run, "dataset": row.dataset, "label": row.label, "seed": int(seed),
                            "top1": float(value), "test_loss": float("nan"),
                            "num_classes": int(getattr(row, "num_classes", 10))})
    return pd.DataFrame(records)


def _trained_summary(values: Sequence[float]) -> tuple[float, float, float, int]:
    """Mean of the trained seeds and its 95 % CI (NaN CI below MIN_SEEDS_FOR_CI seeds)."""
    summary = summarize_seeds(values)
    if summary.n < MIN_SEEDS_FOR_CI:
        return summary.mean, float("nan"), float("nan"), summary.n
    return summary.mean, summary.ci_low, summary.ci_high, summary.n


def _wrap(text: str, width: int = 70) -> str:
    return "\n".join(textwrap.wrap(text, width))


def _seed_offsets(count: int, spread: float) -> np.ndarray:
    """Horizontal offsets that keep ``count`` seeds at one x apart (each seed visible)."""
    if count <= 1:
        return np.zeros(count)
    return np.linspace(-spread, spread, count)


def _figure_legend(fig, axes, failed: bool, bottom: float = 0.16) -> None:
    """One legend for the figure, below the panels (the colours are the same in every panel), with
    what the seed and did-not-train markers mean."""
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    line2d = _plt().Line2D
    handles.append(line2d([], [], marker=SEED_MARKER, linestyle="none", markerfacecolor="none", color="black",
                          markersize=5))
    labels.append("one seed")
    if failed:
        handles.append(line2d([], [], marker=FAILED_MARKER, linestyle="none", color="black", markersize=7))
        labels.append("did not train / at chance (not in the mean)")
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, bottom, 1, 1))


def depth_study_figure(summary: pd.DataFrame, seeds: pd.DataFrame | None = None):
    """Figure 5 as a matplotlib figure (see :func:`depth_study`)."""
    plt = _plt()
    summary = summary.copy()
    summary["family"] = summary["label"].map(family)
    summary["depth"] = summary["label"].str.extract(r"(\d+)$")[0].astype(int)
    per_seed = _seed_rows(summary, seeds)
    per_seed["family"] = per_seed["label"].map(family)
    per_seed["depth"] = per_seed["label"].str.extract(r"(\d+)$")[0].astype(int)
    per_seed["failed"] = [did_not_train(t, int(c), loss) for t, c, loss in
                          zip(per_seed["top1"], per_seed["num_classes"], per_seed["test_loss"])]
    datasets = sorted(summary["dataset"].unique())
    fig, axes = plt.subplots(1, len(datasets) + 1, figsize=(5.5 * (len(datasets) + 1), 4.6), squeeze=False)
    families = sorted(summary["family"].unique())
    any_failed = False
    for ax, dataset in zip(axes[0], datasets):
        panel = per_seed[per_seed["dataset"] == dataset]
        depths = sorted(panel["depth"].unique())
        for index, name in enumerate(families):
            rows = panel[panel["family"] == name]
            if rows.empty:
                continue
            colour = family_colour(name)
            shift = (index - (len(families) - 1) / 2) * 3.0  # families side by side at each depth
            means = []
            for depth, group in rows.groupby("depth"):
                offsets = depth + shift + _seed_offsets(len(group), 0.9)
                trained, failed = group[~group["failed"]], group[group["failed"]]
                ax.scatter(offsets[~group["failed"].to_numpy()], trained["top1"], marker=SEED_MARKER,
                           facecolors="none", edgecolors=colour, s=22, linewidths=1, zorder=3)
                if len(failed):
                    any_failed = True
                    ax.scatter(offsets[group["failed"].to_numpy()], failed["top1"], marker=FAILED_MARKER,
                               color=colour, s=40, linewidths=1.5, zorder=4)
                if len(trained):
                    means.append((depth, *_trained_summary(trained["top1"])))
            label = "ResNet / RMNet" if name == "ResNet" else name
            if means:
                depth_x = np.array([m[0] for m in means], dtype=float) + shift
                _errorbar(ax, depth_x, [m[1] for m in means], [m[2] for m in means], [m[3] for m in means],
                          marker="D", markersize=6, color=colour, linestyle="none", zorder=5,
                          label=f"{label}: mean of trained seeds, 95 % CI (>= {MIN_SEEDS_FOR_CI} seeds)")
                # lines only between neighbouring paper depths that were both run: nothing is drawn
                # through a depth that was not
                by_depth = {m[0]: m[1] for m in means}
                for a, b in zip(DEPTHS, DEPTHS[1:]):
                    if a in by_depth and b in by_depth:
                        ax.plot([a + shift, b + shift], [by_depth[a], by_depth[b]], color=colour, linewidth=1)
            else:
                ax.plot([], [], marker="D", color=colour, linestyle="none", label=f"{label}: no seed trained")
        chance = 100.0 / int(panel["num_classes"].iloc[0]) if len(panel) else 10.0
        ax.axhline(chance, color="grey", linestyle=":", linewidth=1, label="chance")
        rows_all = summary[summary["dataset"] == dataset]
        ax.set(xlabel="Depth", ylabel="top-1 (%)", xticks=depths, xlim=(min(depths) - 12, max(depths) + 12),
               ylim=(0, 100))
        ax.set_title(f"{dataset}: top-1 vs depth\n{_wrap(scope(rows_all, panel['seed']))}", fontsize=8)
    paper_ax = axes[0][-1]
    for label, value in PAPER_DEPTH_133.items():
        colour = family_colour("ResNet" if "ResNet" in label else label)  # the data panels' ResNet / RMNet
        paper_ax.plot([133], [value], marker="*", markersize=11, linestyle="none", color=colour,
                      label=f"paper, CIFAR-100: {label}")
    paper_ax.set(xlabel="Depth", ylabel="top-1 (%)", xticks=[133], xlim=(121, 145), ylim=(0, 100))
    paper_ax.set_title("paper: CIFAR-100, depth 133 only (section 4.1)", fontsize=8)
    _figure_legend(fig, axes[0], any_failed, bottom=0.17)
    return fig


def depth_study(summary_csv: str | os.PathLike, stem: str | os.PathLike,
                seeds_csv: str | os.PathLike | Sequence[str | os.PathLike] | None = None) -> list[Path]:
    """Figure 5: top-1 vs depth, ResNet (= RMNet after RM, same accuracy) vs RepVGG, one panel per
    dataset, and a panel with the paper's CIFAR-100 values at depth 133.

    Every seed is a hollow circle (an x when it did not train, by :func:`did_not_train`); the diamond
    is the mean of the trained seeds with its 95 % CI (clipped to 0-100, none below 3 seeds). Ticks sit
    only at the depths that were run; lines join only neighbouring paper depths that were both run. One
    colour per family in every panel; the scope (dataset, px, widths, epochs, device, seeds) is printed
    in each panel. ``seeds_csv``: the per-seed rows (summary's ``seeds.csv``), else taken from the
    summary's ``top1_per_seed``."""
    summary = pd.read_csv(summary_csv)
    seeds = None
    if seeds_csv is not None:
        paths = [seeds_csv] if isinstance(seeds_csv, (str, os.PathLike)) else list(seeds_csv)
        seeds = pd.concat([pd.read_csv(path) for path in paths], ignore_index=True) if paths else None
    return _save(depth_study_figure(summary, seeds), stem)


def _pruning_points(frame: pd.DataFrame) -> pd.DataFrame:
    """Each pruned network (seed, method, threshold) with whether it collapsed to chance."""
    frame = frame.copy()
    classes = [dataset_spec(d).num_classes if d in DATASETS else 10
               for d in frame.get("dataset", pd.Series(["cifar10"] * len(frame)))]
    frame["num_classes"] = classes
    frame["failed"] = [did_not_train(t, c) for t, c in zip(frame["top1"], classes)]
    return frame


def _pruning_curves(frame: pd.DataFrame, x: str) -> pd.DataFrame:
    """Per (method, threshold): x as the mean over seeds, top-1 as the mean of the points that did not
    collapse (with a 95 % CI from 3 of them), and how many collapsed."""
    rows = []
    for (method, threshold), group in frame.groupby(["method", "threshold"]):
        trained = group[~group["failed"]]
        mean, low, high, n = _trained_summary(trained["top1"]) if len(trained) else (float("nan"),) * 3 + (0,)
        rows.append({"method": method, "threshold": threshold, "x": group[x].mean(), "x_std": group[x].std(),
                     "mean": mean, "low": low, "high": high, "n": n, "collapsed": int(group["failed"].sum())})
    return pd.DataFrame(rows).sort_values(["method", "x"])


def pruning_figure(frame: pd.DataFrame):
    """Figure 6 as a matplotlib figure (see :func:`pruning`)."""
    plt = _plt()
    points = _pruning_points(frame)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    speed = "speedup_vs_unpruned_ratio" if "speedup_vs_unpruned_ratio" in frame else "images_per_sec"
    any_failed = bool(points["failed"].any())
    for ax, x, scale in ((left, speed, 1.0), (right, "pruned_params_ratio", 100.0)):
        for method, rows in points.groupby("method"):
            colour = family_colour(method)
            ok, bad = rows[~rows["failed"]], rows[rows["failed"]]
            ax.scatter(scale * ok[x], ok["top1"], marker=SEED_MARKER, facecolors="none", edgecolors=colour, s=18,
                       linewidths=0.8, zorder=3)
            if len(bad):
                ax.scatter(scale * bad[x], bad["top1"], marker=FAILED_MARKER, color=colour, s=36, linewidths=1.4,
                           zorder=4)
            curve = _pruning_curves(rows, x)
            curve = curve[curve["n"] > 0]
            _errorbar(ax, scale * curve["x"], curve["mean"], curve["low"], curve["high"], marker="D", markersize=5,
                      color=colour, linestyle="none", zorder=5,
                      label=f"{method}: mean of the seeds above chance, 95 % CI (>= {MIN_SEEDS_FOR_CI})")
    chance = 100.0 / int(points["num_classes"].iloc[0]) if len(points) else 10.0
    for ax in (left, right):
        if "top1_unpruned" in frame:
            ax.axhline(frame["top1_unpruned"].mean(), color="black", linestyle="--", linewidth=1,
                       label="trained ResNet 18, unpruned")
        ax.axhline(chance, color="grey", linestyle=":", linewidth=1, label="chance")
        ax.set_ylim(0, 100)
    if "speedup_vs_unpruned_unstable" in frame:  # a wide speed CI is never shown as a clean point
        unstable = frame["speedup_vs_unpruned_unstable"].astype(str).str.lower().isin(["true", "1"])
        if unstable.any():
            left.text(0.02, 0.95, f"{int(unstable.sum())} of {len(frame)} speed ratios unstable (CI wider than +-5 %)",
                      transform=left.transAxes, fontsize=7, color="firebrick", va="top")
    if any_failed:
        right.text(0.02, 0.95, f"{int(points['failed'].sum())} of {len(points)} pruned networks at chance (x)",
                   transform=right.transAxes, fontsize=7, va="top")
    batch = frame["batch_size"].iloc[0] if "batch_size" in frame else "?"
    left.set(xlabel=f"speed relative to the unpruned ResNet 18 (paired ratio, batch {batch})", ylabel="top-1 (%)",
             title="(a) accuracy vs speed, no fine-tuning")
    # The paper's axis is 0-100 %; RM's plain network starts larger than the ResNet, so lightly pruned
    # RMNet points have negative ratios and the axis extends to show them.
    right.set(xlabel="Pruned Params Ratio (%)", ylabel="top-1 (%)",
              xlim=(min(0.0, 100 * frame["pruned_params_ratio"].min() - 5), 100),
              title="(b) accuracy vs pruned params, no fine-tuning")
    seeds = frame["seed"] if "seed" in frame else [0]
    fig.suptitle(scope(frame, seeds), fontsize=8)
    _figure_legend(fig, (left, right), any_failed, bottom=0.14)
    return fig


def pruning(csv: str | os.PathLike, stem: str | os.PathLike) -> list[Path]:
    """Figure 6: top-1 vs speed and vs pruned-parameter ratio, RMNet 18 (RM + slimming) vs ResNet 18
    (same threshold rule, residual constraint), no fine-tuning. Every pruned network of every seed is a
    hollow circle, an x where it collapsed to chance (:func:`did_not_train`); the diamond is the mean of
    the points above chance with its 95 % CI (clipped to 0-100, none below 3 points). Speed is the
    paired ratio of each pruned network over the unpruned ResNet, on the rows' device."""
    return _save(pruning_figure(pd.read_csv(csv)), stem)


def ablation_figure(frame: pd.DataFrame):
    """Figure 7 as a matplotlib figure (see :func:`ablation`)."""
    plt = _plt()
    factors = list(dict.fromkeys(frame["factor"]))
    fig, axes = plt.subplots(2, len(factors), figsize=(4 * len(factors), 6.4), squeeze=False)
    rm_colour, res_colour = family_colour("RMNet"), family_colour("ResNet")
    for column, factor in enumerate(factors):
        rows = frame[frame["factor"] == factor].sort_values("value")
        title = ABLATION_TITLES.get(factor, factor)
        values = sorted(rows["value"].unique())
        top = axes[0][column]
        if "speedup_ci_low" in rows:
            _errorbar(top, rows["value"], rows["speedup"], rows["speedup_ci_low"], rows["speedup_ci_high"],
                      bounds=(0.0, np.inf), marker="D", color=rm_colour, linestyle="none")
            for r in rows[rows["unstable"].astype(str).str.lower().isin(["true", "1"])].itertuples():
                top.annotate("unstable", (r.value, r.speedup), textcoords="offset points", xytext=(3, 5),
                             color="firebrick", fontsize=8)
        else:
            top.plot(rows["value"], rows["speedup"], marker="D", color=rm_colour, linestyle="none")
        top.axhline(1.0, color="grey", linewidth=0.8)
        top.set(title=title, ylabel="speed-up (RMNet / its ResNet form)", xticks=values)
        bottom = axes[1][column]
        bottom.plot(rows["value"], rows["ips_resnet_form"], marker="o", linestyle="none", color=res_colour,
                    label="ResNet form")
        bottom.plot(rows["value"], rows["ips_rmnet"], marker="D", linestyle="none", color=rm_colour, label="RMNet")
        bottom.set(xlabel=title, ylabel="images/s", xticks=values, ylim=(0, None))
        bottom.legend(fontsize=7)
    allocator = _values(frame, "cpu_allocator")
    threads = _values(frame, "threads", "{} threads")
    fig.suptitle("; ".join(filter(None, [_values(frame, "model"), _values(frame, "input_size", "input {}"),
                                         _values(frame, "device_name"), threads,
                                         f"allocator {allocator}" if allocator else "allocator not recorded",
                                         _profile_title(frame)])), fontsize=8)
    fig.tight_layout()
    return fig


def ablation(csv: str | os.PathLike, stem: str | os.PathLike) -> list[Path]:
    """Figure 7: speed-up of RMNet over its ResNet form (top, paired ratio with its 95 % CI, clipped at
    0) and both speeds (bottom) per factor, under the paper's panel titles: markers at the swept values
    only (no line through values not measured), RMNet and ResNet in their family colours, and the
    scope (model, input, CPU, threads, allocator) in the title."""
    return _save(ablation_figure(pd.read_csv(csv)), stem)


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
