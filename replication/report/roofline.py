"""Roofline view of a throughput CSV: achieved FLOP/s (2 x MAC/s) as a fraction of the device's peak."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


def achieved_fraction(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with ``achieved_flops`` = 2 x images/s x MACs per image, and ``fraction_of_peak``."""
    frame = frame[(frame["status"] == "ok") & frame["peak_flops"].notna() & frame["macs_per_image"].notna()].copy()
    frame["achieved_flops"] = 2 * frame["images_per_sec"] * frame["macs_per_image"]
    frame["fraction_of_peak"] = frame["achieved_flops"] / frame["peak_flops"]
    return frame


def plot(throughput_csv: str | os.PathLike, output_stem: str | os.PathLike) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.pdf``: one panel per device / runtime / dtype."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = achieved_fraction(pd.read_csv(throughput_csv))
    panels = list(frame.groupby(["device_name", "runtime", "dtype", "batch_size"]))
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(6 * max(1, len(panels)), 4.5), squeeze=False)
    for ax, ((device, runtime, dtype, batch), rows) in zip(axes[0], panels):
        for form, marker in (("train", "o"), ("deploy", "s")):
            subset = rows[rows["form"] == form]
            ax.scatter(subset["macs_per_image"] / 1e9, subset["fraction_of_peak"], marker=marker, label=form)
            for r in subset.itertuples():
                ax.annotate(r.backbone, (r.macs_per_image / 1e9, r.fraction_of_peak), fontsize=6, alpha=0.7)
        source = rows["peak_source"].iloc[0]
        ax.set(xscale="log", xlabel="GMACs per image", ylabel=f"achieved / peak ({source})",
               title=f"{device}\n{runtime}, {dtype}, batch {batch}")
        ax.legend()
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
