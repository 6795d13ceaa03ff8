"""Roofline view of a throughput CSV.

Where the CSV has the cost model's FLOPs and bytes per image (``flops_per_image``, ``bytes_per_image``)
and the device's bandwidth, each measured model is a point at its arithmetic intensity (FLOPs / byte,
*predicted* by the cost model from the op shapes) and its achieved FLOP/s (*measured* images/s x the
model's FLOPs per image), under the roofs min(peak, bandwidth x intensity) of the device (data sheet on
known GPUs, measured matmul / copy rates on a CPU; the legend says which). Older CSVs without those
columns get the achieved fraction of peak against MACs per image.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd


def _singles(frame: pd.DataFrame) -> pd.DataFrame:
    if "measure" in frame:
        frame = frame[frame["measure"].fillna("single") != "pair"]
    return frame[frame["status"] == "ok"]


def achieved_fraction(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with ``achieved_flops`` = 2 x images/s x MACs per image, and ``fraction_of_peak``."""
    frame = _singles(frame)
    frame = frame[frame["peak_flops"].notna() & frame["macs_per_image"].notna()].copy()
    frame["achieved_flops"] = 2 * frame["images_per_sec"] * frame["macs_per_image"]
    frame["fraction_of_peak"] = frame["achieved_flops"] / frame["peak_flops"]
    return frame


def roofline_points(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with ``intensity`` (FLOPs / byte, cost model) and ``achieved_flops`` (measured images/s x
    FLOPs per image), and the ``attainable`` roof at that intensity; empty without the cost columns."""
    needed = ("flops_per_image", "bytes_per_image", "bandwidth", "peak_flops")
    if any(column not in frame for column in needed):
        return frame.iloc[0:0]
    frame = _singles(frame)
    frame = frame[frame[list(needed)].notna().all(axis=1)].copy()
    frame["intensity"] = frame["flops_per_image"] / frame["bytes_per_image"]
    frame["achieved_flops"] = frame["images_per_sec"] * frame["flops_per_image"]
    frame["attainable"] = np.minimum(frame["peak_flops"], frame["bandwidth"] * frame["intensity"])
    return frame


def plot(throughput_csv: str | os.PathLike, output_stem: str | os.PathLike) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.pdf``: one panel per device / runtime / dtype / batch."""
    import matplotlib  # loaded when a figure is drawn, after choosing its file-only backend

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    raw = pd.read_csv(throughput_csv)
    points = roofline_points(raw)
    roofline = len(points) > 0
    frame = points if roofline else achieved_fraction(raw)
    panels = list(frame.groupby(["device_name", "runtime", "dtype", "batch_size"]))
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(6 * max(1, len(panels)), 4.5), squeeze=False)
    for ax, ((device, runtime, dtype, batch), rows) in zip(axes[0], panels, strict=False):
        x_key, y_key = ("intensity", "achieved_flops") if roofline else ("macs_per_image", "fraction_of_peak")
        for form, marker in (("train", "o"), ("deploy", "s")):
            subset = rows[rows["form"] == form]
            x = subset[x_key] if roofline else subset[x_key] / 1e9
            ax.scatter(x, subset[y_key], marker=marker, label=f"{form} (measured)")
            for label, xv, yv in zip(subset["backbone"], x, subset[y_key], strict=True):
                ax.annotate(label, (xv, yv), fontsize=6, alpha=0.7)
        source = rows["peak_source"].iloc[0]
        if roofline:
            peak, bandwidth = rows["peak_flops"].iloc[0], rows["bandwidth"].iloc[0]
            grid = np.logspace(np.log10(rows["intensity"].min() / 2), np.log10(rows["intensity"].max() * 2), 100)
            ax.plot(grid, np.minimum(peak, bandwidth * grid), color="grey", lw=1,
                    label=f"roof: {peak / 1e9:.0f} GFLOP/s ({source}), {bandwidth / 1e9:.0f} GB/s "
                          f"({rows['bandwidth_source'].iloc[0]})")
            ax.set(xscale="log", yscale="log", xlabel="FLOPs / byte (predicted by the cost model)",
                   ylabel="achieved FLOP/s (measured)")
        else:
            ax.set(xscale="log", xlabel="GMACs per image", ylabel=f"achieved / peak ({source})")
        ax.set_title(f"{device}\n{runtime}, {dtype}, batch {batch}")
        ax.legend(fontsize=7)
    if not panels:
        axes[0][0].text(0.5, 0.5, "no successful measurements", ha="center")
    fig.tight_layout()
    stem = Path(output_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        fig.savefig(path, dpi=150)
    plt.close(fig)
    return paths
