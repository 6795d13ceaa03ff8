"""Params and MACs beside paper Tables 1-3: ours in both forms, the paper's, and the differences.

A row matches when our value in one form equals the paper's to within 2 % or to the precision the
paper prints (half a unit of its last digit, e.g. 1.9 G covers 1.85-1.95 G). Rows that match in no
form carry an explanation in :data:`EXPLANATIONS`; nothing is adjusted to make a row match.
"""

from __future__ import annotations

import os
from importlib import resources

import pandas as pd

from ..atomic_io import write_csv_atomic, write_text_atomic
from ..paper import reported

REL_TOLERANCE = 0.02

# (table, quantity column, scale to our raw count)
_QUANTITIES = {
    "table1_sota": (("params_m", "params", 1e6), ("flops_g", "macs", 1e9)),
    "table2_mobilenet": (("flops_m", "macs", 1e6),),
    "table3_repvgg_vs_resnet": (("params_m", "params", 1e6), ("flops_g", "macs", 1e9)),
}

EXPLANATIONS = {
    "RMNet 26x3_32": "The paper's 8.8 M / 0.51 G matches neither form of the RMNet 26x3_32 defined by the official "
                     "code (training 8.9 M / 0.47 G, deploy 12.0 M / 0.65 G); our deploy form prints exactly as "
                     "paper Table 4, so the architecture is right and the paper's count is unexplained.",
    "ResDistill 50": "The paper lists ResNet-50's numbers; the ResDistill student is ResNet-50 without shortcuts, "
                     "which drops the four projection convs (2.8 M parameters, 0.36 GMACs).",
    "MobileNetV2": "The paper's MobileNetV2 is unpublished. Ours is designed so that RM + fuse gives exactly the "
                   "MobileNetV1 widths (its RMNetV1 row matches), with bottlenecks of a quarter of the V1 width; "
                   "a V2 with residual blocks in every stride-1 position cannot cost much more than V1, so the "
                   "paper's 83 M suggests a different design.",
}


def _half_unit(text: str) -> float:
    decimals = len(text.split(".")[1]) if "." in text else 0
    return 0.5 * 10 ** (-decimals)


def compare(counts: pd.DataFrame) -> pd.DataFrame:
    """One line per paper row and quantity: paper value, ours (train, deploy), relative differences, match."""
    ours_by_row = {key: group.set_index("form") for key, group in counts.groupby(["table", "dataset", "backbone"])}
    lines = []
    for table, quantities in _QUANTITIES.items():
        paper = reported(table)
        printed = _printed(table)
        for index, row in paper.iterrows():
            ours = ours_by_row.get((table, row["dataset"], row["backbone"]))
            if ours is None:
                continue
            for column, quantity, scale in quantities:
                value = float(row[column])
                tolerance = max(REL_TOLERANCE * value, _half_unit(printed.loc[index, column]))
                train, deploy = ours.loc["train", quantity] / scale, ours.loc["deploy", quantity] / scale
                matched = [form for form, v in (("train", train), ("deploy", deploy)) if abs(v - value) <= tolerance]
                lines.append({
                    "table": table, "dataset": row["dataset"], "backbone": row["backbone"],
                    "model": ours.loc["train", "model"], "quantity": column, "paper": value,
                    "ours_train": round(train, 4), "ours_deploy": round(deploy, 4),
                    "rel_diff_train": round((train - value) / value, 4),
                    "rel_diff_deploy": round((deploy - value) / value, 4),
                    "matches": "+".join(matched) if matched else "none",
                    "explanation": "" if matched else EXPLANATIONS.get(row["backbone"], "unexplained"),
                })
    return pd.DataFrame(lines)


def _printed(table: str) -> pd.DataFrame:
    """The paper table as printed (strings), to know each number's precision."""
    with resources.files("replication.paper").joinpath(f"{table}.csv").open() as handle:
        return pd.read_csv(handle, dtype=str)


def to_markdown(comparison: pd.DataFrame) -> str:
    """The comparison as a Markdown document (one table per paper table), explanations below."""
    parts = ["# Parameters and MACs: ours vs the paper", "",
             "Ours: torch.utils.flop_counter (MACs = FLOPs / 2) at the paper's input size, batch 1. `train` is the "
             "model as trained, `deploy` after `replication.rm.convert`. A row matches within 2 % or the paper's "
             "printed precision.", ""]
    for table, group in comparison.groupby("table", sort=False):
        parts += [f"## {table}", "",
                  group.drop(columns=["table", "explanation"]).to_markdown(index=False), ""]
    unexplained = comparison[comparison["matches"] == "none"][["backbone", "quantity", "explanation"]]
    if len(unexplained):
        parts += ["## Rows that match in no form", ""]
        for backbone, group in unexplained.groupby("backbone", sort=False):
            parts.append(f"- **{backbone}** ({', '.join(group['quantity'])}): {group['explanation'].iloc[0]}")
        parts.append("")
    return "\n".join(parts)


def build(counts_csv: str | os.PathLike, comparison_csv: str | os.PathLike,
          markdown: str | os.PathLike) -> pd.DataFrame:
    """Read the counts CSV, write the comparison CSV and Markdown table."""
    comparison = compare(pd.read_csv(counts_csv))
    write_csv_atomic(comparison, comparison_csv)
    write_text_atomic(to_markdown(comparison), markdown)
    return comparison
