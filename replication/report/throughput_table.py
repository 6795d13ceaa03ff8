"""Throughput ratios from a throughput CSV: deploy / train per model, RMNet / baseline per paper group.

Ratios are formed only between rows of the same run context (device, dtype, batch, input size,
runtime), so a table never divides numbers measured under different settings. A ratio comes from the
CSV's paired rows (``measure=pair``) and is printed with its 95 % CI, ``1.23 [1.21, 1.25]``, and the
word ``unstable`` when its CI stayed wider than +-5 %; where a CSV has no pair for it (an older,
unpaired run) it is the quotient of two single measurements and says ``unpaired``. Images/s measured
while other processes were busy say ``busy``. The paper's own ratio (V100, batch 128) is shown beside
ours, and, given the cost model's predictions, a section of predicted GPU numbers follows, apart from
every measured column.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..atomic_io import write_text_atomic
from ..measure.paired import format_ratio
from .cost_model_table import paper_speeds, to_markdown as predicted_markdown

CONTEXT = ["device_name", "dtype", "batch_size", "input_size", "runtime", "channels_last", "compile", "threads"]
RATIOS = ("deploy_over_train", "rmnet_over_this")


def _flag(value: object) -> bool:
    return str(value).strip().lower() in ("true", "1", "1.0")


def _split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(single-model rows, pair rows); a CSV without a ``measure`` column has single rows only."""
    if "measure" not in frame:
        return frame, frame.iloc[0:0]
    measure = frame["measure"].fillna("single")
    return frame[measure != "pair"], frame[measure == "pair"]


def ratios(frame: pd.DataFrame) -> pd.DataFrame:
    """One line per measured model: its speeds, deploy/train ratio, and ratio of its group's RMNet to it.

    Each ratio ``r`` comes with ``r_ci_low``, ``r_ci_high``, ``r_unstable`` and ``r_paired`` (False:
    a quotient of two unpaired single measurements, no CI)."""
    singles, pairs = _split(frame)
    singles = singles[singles["status"] == "ok"]
    pairs = pairs[pairs["status"] == "ok"]
    paper = paper_speeds()
    lines = []
    for context, runs in singles.groupby(CONTEXT, dropna=False):
        latest = runs.drop_duplicates(["model", "form", "group", "backbone"], keep="last")
        context_pairs = pairs
        for key, value in zip(CONTEXT, context, strict=True):
            if key in context_pairs and not pd.isna(value):
                context_pairs = context_pairs[context_pairs[key].astype(str) == str(value)]
        for group, members in latest.groupby("group", sort=False):
            speed = {(r.backbone, r.form): r.images_per_sec for r in members.itertuples()}
            busy = {(r.backbone, r.form): _flag(getattr(r, "busy", False)) for r in members.itertuples()}
            rmnets = [b for b in members["backbone"].unique() if b.startswith("RMNet")]
            for backbone, rows in members.groupby("backbone", sort=False):
                first = rows.iloc[0]
                own = speed.get((backbone, first["paper_form"]))
                train, deploy = speed.get((backbone, "train")), speed.get((backbone, "deploy"))
                line = {**dict(zip(CONTEXT, context, strict=True)), "group": group, "dataset": first["dataset"],
                        "backbone": backbone, "model": first["model"], "paper_form": first["paper_form"],
                        "ips_train": train, "ips_deploy": deploy, "busy_train": busy.get((backbone, "train"), False),
                        "busy_deploy": busy.get((backbone, "deploy"), False),
                        "paper_ips": paper.get((first["dataset"], backbone))}
                mine = context_pairs[(context_pairs["group"] == group) & (context_pairs["backbone"] == backbone)]
                line.update(_ratio(mine, "deploy_over_train", deploy / train if train and deploy else None))
                if rmnets and not backbone.startswith("RMNet") and own:
                    rmnet = rmnets[0]
                    rmnet_speed = speed.get((rmnet, "deploy"))
                    paper_rmnet = paper.get((first["dataset"], rmnet))
                    line["rmnet"] = rmnet
                    line.update(_ratio(mine, "rmnet_over_this", rmnet_speed / own if rmnet_speed else None))
                    line["paper_rmnet_over_this"] = (paper_rmnet / line["paper_ips"]
                                                     if paper_rmnet and line["paper_ips"] else None)
                lines.append(line)
    return pd.DataFrame(lines)


def _ratio(pairs: pd.DataFrame, kind: str, unpaired: float | None) -> dict[str, object]:
    rows = pairs[pairs["ratio_kind"] == kind] if "ratio_kind" in pairs else pairs.iloc[0:0]
    if len(rows):
        r = rows.iloc[-1]
        return {kind: r["ratio"], f"{kind}_ci_low": r["ratio_ci_low"], f"{kind}_ci_high": r["ratio_ci_high"],
                f"{kind}_unstable": _flag(r["unstable"]), f"{kind}_paired": True, f"{kind}_rounds": r["rounds"],
                f"{kind}_busy": _flag(r.get("busy", False)), f"{kind}_pair_id": r["pair_id"]}
    return {kind: unpaired, f"{kind}_ci_low": np.nan, f"{kind}_ci_high": np.nan, f"{kind}_unstable": False,
            f"{kind}_paired": False, f"{kind}_rounds": np.nan, f"{kind}_busy": False, f"{kind}_pair_id": ""}


def _ratio_text(line: pd.Series, kind: str) -> str:
    value = line.get(kind)
    if value is None or pd.isna(value):
        return ""
    if not line.get(f"{kind}_paired", False):
        return f"{value:.2f} (unpaired)"
    text = format_ratio(value, line[f"{kind}_ci_low"], line[f"{kind}_ci_high"], bool(line[f"{kind}_unstable"]))
    return f"{text} busy" if line.get(f"{kind}_busy", False) else text


def _ips_text(value: object, busy: bool) -> str:
    if value is None or pd.isna(value):
        return ""
    return f"{value:.4g} busy" if busy else f"{value:.4g}"


def _failures(frame: pd.DataFrame) -> pd.DataFrame:
    failed = frame[frame["status"].astype(str) != "ok"] if "status" in frame else frame.iloc[0:0]
    columns = [c for c in ("model", "form", "runtime", "batch_size", "input_size", "status") if c in failed]
    return failed[columns]


def to_markdown(table: pd.DataFrame, title: str = "Throughput: ours vs the paper", *,
                failures: pd.DataFrame | None = None, predictions: pd.DataFrame | None = None) -> str:
    parts = [f"# {title}", "",
             "Measured images/s, median of repeats (`busy`: other processes used more than 10 % of the CPU "
             "meanwhile). `deploy_over_train`: deploy form / training form of the same model. `rmnet_over_this`: "
             "the group's RMNet (deploy) / this model in the form the paper timed. Ratios are paired and "
             "interleaved: median of per-round ratios [bootstrap 95 % CI]; `unstable`: the CI stayed wider than "
             "+-5 %; `unpaired`: two separate single measurements, no CI. The paper's speeds are on a Tesla V100 "
             "at batch 128; compare ratios, not absolute numbers, across devices.", ""]
    show = ["dataset", "backbone", "paper_form", "ips_train", "ips_deploy", "deploy_over_train", "rmnet",
            "rmnet_over_this", "paper_ips", "paper_rmnet_over_this"]
    if table.empty:
        parts += ["No successful measurement.", ""]
    for context, rows in (table.groupby(CONTEXT, dropna=False) if not table.empty else []):
        header = ", ".join(f"{k}={v}" for k, v in zip(CONTEXT, context, strict=True))
        shown = rows.reindex(columns=show).copy()
        shown["ips_train"] = [_ips_text(v, b) for v, b in zip(rows["ips_train"], rows["busy_train"], strict=True)]
        shown["ips_deploy"] = [_ips_text(v, b) for v, b in zip(rows["ips_deploy"], rows["busy_deploy"], strict=True)]
        for kind in RATIOS:
            shown[kind] = [_ratio_text(line, kind) for _, line in rows.iterrows()]
        shown["paper_rmnet_over_this"] = shown["paper_rmnet_over_this"].astype(float).round(3)
        shown = shown.astype(object).where(shown.notna(), "")
        parts += [f"## {header}", "", shown.to_markdown(index=False), ""]
    if failures is not None and len(failures):
        parts += ["## Not measured", "", "`oom`: the batch did not fit in memory (it is never reduced "
                  "automatically); `error: ...`: the model could not be run with these settings.", "",
                  failures.to_markdown(index=False), ""]
    if predictions is not None and len(predictions):
        parts += [predicted_markdown(predictions), ""]
    return "\n".join(parts)


def build(throughput_csv: str | os.PathLike, markdown: str | os.PathLike,
          predictions_csv: str | os.PathLike | None = None) -> pd.DataFrame:
    """Write the Markdown table of ``throughput_csv`` (and the cost model's predictions, if given)."""
    frame = pd.read_csv(throughput_csv)
    table = ratios(frame)
    predictions = pd.read_csv(predictions_csv) if predictions_csv is not None else None
    write_text_atomic(to_markdown(table, failures=_failures(frame), predictions=predictions), markdown)
    return table
