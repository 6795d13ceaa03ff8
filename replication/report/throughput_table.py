"""Throughput ratios from a throughput CSV: deploy / train per model, RMNet / baseline per paper group.

Ratios are formed only between rows of the same run context (device, dtype, batch, input size,
runtime), so a table never divides numbers measured under different settings. The paper's own ratio
(V100, batch 128) is shown beside ours.
"""

from __future__ import annotations

import os

import pandas as pd

from ..paper import reported
from ..results import write_text_atomic

CONTEXT = ["device_name", "dtype", "batch_size", "input_size", "runtime", "channels_last", "compile", "threads"]


def _paper_speeds() -> dict[tuple[str, str], float]:
    speeds = {}
    for table in ("table1_sota", "table2_mobilenet"):
        frame = reported(table)
        for _, row in frame.iterrows():
            speeds[(row["dataset"], row["backbone"])] = float(row["imgs_per_sec"])
    return speeds


def ratios(frame: pd.DataFrame) -> pd.DataFrame:
    """One line per measured model: its speeds, deploy/train ratio, and ratio of its group's RMNet to it."""
    frame = frame[frame["status"] == "ok"]
    paper = _paper_speeds()
    lines = []
    for context, runs in frame.groupby(CONTEXT, dropna=False):
        latest = runs.drop_duplicates(["model", "form", "group", "backbone"], keep="last")
        for group, members in latest.groupby("group", sort=False):
            speed = {(r.backbone, r.form): r.images_per_sec for r in members.itertuples()}
            rmnets = [b for b in members["backbone"].unique() if b.startswith("RMNet")]
            for backbone, rows in members.groupby("backbone", sort=False):
                first = rows.iloc[0]
                own = speed.get((backbone, first["paper_form"]))
                train, deploy = speed.get((backbone, "train")), speed.get((backbone, "deploy"))
                line = {**dict(zip(CONTEXT, context)), "group": group, "dataset": first["dataset"],
                        "backbone": backbone, "model": first["model"], "paper_form": first["paper_form"],
                        "ips_train": train, "ips_deploy": deploy,
                        "deploy_over_train": deploy / train if train and deploy else None,
                        "paper_ips": paper.get((first["dataset"], backbone))}
                if rmnets and not backbone.startswith("RMNet") and own:
                    rmnet = rmnets[0]
                    rmnet_speed = speed.get((rmnet, "deploy"))
                    paper_rmnet = paper.get((first["dataset"], rmnet))
                    line.update({"rmnet": rmnet, "rmnet_over_this": rmnet_speed / own if rmnet_speed else None,
                                 "paper_rmnet_over_this": (paper_rmnet / line["paper_ips"]
                                                           if paper_rmnet and line["paper_ips"] else None)})
                lines.append(line)
    return pd.DataFrame(lines)


def to_markdown(table: pd.DataFrame, title: str = "Throughput: ours vs the paper") -> str:
    parts = [f"# {title}", "",
             "Images/s, median of repeats. `deploy_over_train`: deploy form / training form of the same model. "
             "`rmnet_over_this`: the group's RMNet (deploy) / this model in the form the paper timed. The paper's "
             "speeds are on a Tesla V100 at batch 128; compare ratios, not absolute numbers, across devices.", ""]
    show = ["dataset", "backbone", "paper_form", "ips_train", "ips_deploy", "deploy_over_train", "rmnet",
            "rmnet_over_this", "paper_ips", "paper_rmnet_over_this"]
    for context, rows in table.groupby(CONTEXT, dropna=False):
        header = ", ".join(f"{k}={v}" for k, v in zip(CONTEXT, context))
        parts += [f"## {header}", "", rows.reindex(columns=show).round(3).to_markdown(index=False), ""]
    return "\n".join(parts)


def build(throughput_csv: str | os.PathLike, markdown: str | os.PathLike) -> pd.DataFrame:
    table = ratios(pd.read_csv(throughput_csv))
    write_text_atomic(to_markdown(table), markdown)
    return table
