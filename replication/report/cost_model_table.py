"""The cost model's predictions beside the paper's V100 column: images/s per row, RMNet / baseline
ratios, predicted H100 ratios, and where RM's deploy-form speed-up comes from (memory traffic, FLOPs,
kernel launches). Every number here is *predicted* (from ``experiments.cost_predictions``'s CSV) except
the paper's columns; nothing is measured.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from ..atomic_io import write_text_atomic
from ..paper import reported

ALGORITHM_LABELS = {"direct": "direct conv", "winograd": "Winograd 3x3"}


def paper_speeds() -> dict[tuple[str, str], float]:
    """(dataset, backbone) -> the paper's images/s (Tesla V100, batch 128), Tables 1 and 2."""
    speeds = {}
    for table in ("table1_sota", "table2_mobilenet"):
        for _, row in reported(table).iterrows():
            speeds[(row["dataset"], row["backbone"])] = float(row["imgs_per_sec"])
    return speeds


def _select(predictions: pd.DataFrame, device: str, dtype: str, algorithm: str) -> pd.DataFrame:
    rows = predictions[(predictions["device"] == device) & (predictions["dtype"] == dtype)
                       & (predictions["conv_algorithm"] == algorithm)]
    return rows.drop_duplicates(["table", "dataset", "backbone", "form"], keep="last")


def paper_rows(predictions: pd.DataFrame, device: str = "v100", dtype: str = "fp32",
               algorithm: str = "direct") -> pd.DataFrame:
    """Every paper row, in the form the paper timed, with the prediction and the paper's images/s.
    RMNetV1 (Table 2) is MobileNetV2's deploy form."""
    paper = paper_speeds()
    selected = _select(predictions, device, dtype, algorithm)
    lines = []
    for r in selected[selected["form"] == selected["paper_form"]].itertuples():
        lines.append({"table": r.table, "dataset": r.dataset, "backbone": r.backbone, "form": r.form,
                      "group": r.group, "predicted": r.predicted_images_per_sec,
                      "paper": paper.get((r.dataset, r.backbone), np.nan)})
        if r.backbone == "MobileNetV2":
            deploy = selected[(selected["dataset"] == r.dataset) & (selected["backbone"] == "MobileNetV2")
                              & (selected["form"] == "deploy")]
            if len(deploy):
                lines.append({"table": r.table, "dataset": r.dataset, "backbone": "RMNetV1", "form": "deploy",
                              "group": r.group, "predicted": float(deploy["predicted_images_per_sec"].iloc[0]),
                              "paper": paper.get((r.dataset, "RMNetV1"), np.nan)})
    return pd.DataFrame(lines)


def ratio_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """RMNet / baseline per group (the group's first RMNet over every other row; Table 2: RMNetV1 over
    MobileNetV2 and MobileNetV1), predicted and the paper's."""
    lines = []
    for group, members in rows.groupby("group", sort=False):
        rmnets = members[members["backbone"].str.startswith("RMNet")]
        if rmnets.empty:
            continue
        top = rmnets.iloc[0]
        for r in members[~members["backbone"].str.startswith("RMNet")].itertuples():
            lines.append({"group": group, "dataset": r.dataset, "rmnet": top["backbone"], "baseline": r.backbone,
                          "paper_ratio": top["paper"] / r.paper, "predicted_ratio": top["predicted"] / r.predicted})
    return pd.DataFrame(lines)


def agreement(rows: pd.DataFrame) -> dict[str, float]:
    """Spearman rank correlation (all rows; CIFAR and ImageNet rows of Table 1 apart) and the median
    absolute error of the RMNet / baseline ratios."""
    out = {}
    cifar = rows[(rows["table"] == "table1_sota") & (rows["dataset"] != "ImageNet")]
    imagenet = rows[rows["dataset"] == "ImageNet"]
    for label, subset in (("all", rows), ("cifar_table1", cifar), ("imagenet_table1", imagenet)):
        result = spearmanr(subset["predicted"], subset["paper"])
        out[f"spearman_{label}"], out[f"spearman_{label}_p"], out[f"rows_{label}"] = (
            float(result.statistic), float(result.pvalue), len(subset))
    ratios = ratio_rows(rows)
    out["ratio_median_abs_error"] = float((ratios["predicted_ratio"] - ratios["paper_ratio"]).abs().median())
    out["ratios"] = len(ratios)
    return out


def speedup_sources(predictions: pd.DataFrame, device: str, dtype: str, algorithm: str = "direct") -> pd.DataFrame:
    """Per model with a deploy form: predicted training / deploy images/s and the change of the batch
    time split into memory-bound ops, compute-bound ops and kernel launches (positive: saved by RM)."""
    selected = _select(predictions, device, dtype, algorithm)
    selected = selected[selected["is_rmnet"] | (selected["backbone"] == "MobileNetV2")]
    lines = []
    for _, forms in selected.groupby(["model", "dataset"], sort=False):
        if set(forms["form"]) != {"train", "deploy"}:
            continue
        train, deploy = (forms[forms["form"] == f].iloc[0] for f in ("train", "deploy"))
        saved = {part: 1e3 * (train[f"predicted_{part}_s"] - deploy[f"predicted_{part}_s"])
                 for part in ("memory", "compute", "launch")}
        total = sum(saved.values())
        lines.append({"model": train["backbone"], "input": train["input_size"],
                      "ips_train": train["predicted_images_per_sec"], "ips_deploy": deploy["predicted_images_per_sec"],
                      "deploy_over_train": deploy["predicted_images_per_sec"] / train["predicted_images_per_sec"],
                      "saved_ms": total, "memory_ms": saved["memory"], "compute_ms": saved["compute"],
                      "launch_ms": saved["launch"],
                      "memory_share": saved["memory"] / total if total > 0 else np.nan})
    frame = pd.DataFrame(lines)
    # CIFAR-10 and CIFAR-100 differ in the classifier only; keep one
    return frame.drop_duplicates(["model", "input"]) if len(frame) else frame


def to_markdown(predictions: pd.DataFrame) -> str:
    batch = int(predictions["batch_size"].iloc[0])
    parts = [
        "## Predicted by the cost model (not measured)", "",
        f"Cost model (`replication.measure.cost_model`): per kernel max(FLOPs / peak, bytes / bandwidth) plus a "
        f"fixed launch cost, summed over the eager forward pass at batch {batch}, device specs from "
        "`replication/measure/devices.yaml` (data sheets). `direct conv`: the model as specified; `Winograd 3x3`: "
        "dense 3x3 stride-1 convolutions at 2.25x fewer multiplies, as cuDNN's Winograd kernels do (an explanatory "
        "variant). The paper's column is its Tesla V100 measurement; no prediction is a measurement.", ""]
    tables = {algorithm: paper_rows(predictions, "v100", "fp32", algorithm) for algorithm in ALGORITHM_LABELS}
    merged = tables["direct"].rename(columns={"predicted": "predicted V100 (direct conv)"})
    merged["predicted / paper (direct)"] = merged["predicted V100 (direct conv)"] / merged["paper"]
    merged["predicted V100 (Winograd 3x3)"] = tables["winograd"]["predicted"].to_numpy()
    merged["predicted / paper (Winograd)"] = merged["predicted V100 (Winograd 3x3)"] / merged["paper"]
    show = merged.drop(columns=["group", "table"]).rename(columns={"paper": "paper V100", "form": "form timed"})
    parts += ["### Images/s at batch 128, fp32: predicted V100 beside the paper's V100", "",
              show.to_markdown(index=False, floatfmt=".4g"), ""]
    for algorithm, label in ALGORITHM_LABELS.items():
        stats = agreement(tables[algorithm])
        parts.append(
            f"- **{label}**: Spearman rank correlation {stats['spearman_all']:.3f} over all {stats['rows_all']} rows "
            f"(p = {stats['spearman_all_p']:.1e}); within Table 1's CIFAR rows {stats['spearman_cifar_table1']:.3f} "
            f"({stats['rows_cifar_table1']} rows), within its ImageNet rows {stats['spearman_imagenet_table1']:.3f} "
            f"({stats['rows_imagenet_table1']} rows); median absolute error of the {stats['ratios']} RMNet / "
            f"baseline ratios {stats['ratio_median_abs_error']:.3f}.")
    far = merged[(merged["predicted / paper (direct)"] - 1).abs() > 0.25]
    if len(far):
        offs = zip(far["dataset"], far["backbone"], far["predicted / paper (direct)"], strict=True)
        parts.append("- Rows where the direct prediction is more than 25 % off the paper's: "
                     + ", ".join(f"{dataset} {backbone} ({off:.2f}x)" for dataset, backbone, off in offs) + ".")
    parts.append("")

    ratio_table = ratio_rows(tables["direct"]).rename(columns={"predicted_ratio": "predicted V100 (direct)"})
    ratio_table["abs error (direct)"] = (ratio_table["predicted V100 (direct)"] - ratio_table["paper_ratio"]).abs()
    ratio_table["predicted V100 (Winograd)"] = ratio_rows(tables["winograd"])["predicted_ratio"].to_numpy()
    ratio_table["abs error (Winograd)"] = (ratio_table["predicted V100 (Winograd)"] - ratio_table["paper_ratio"]).abs()
    for dtype in ("fp32", "tf32", "fp16"):
        h100 = paper_rows(predictions, "h100", dtype, "direct")
        if len(h100):
            ratio_table[f"predicted H100 {dtype}"] = ratio_rows(h100)["predicted_ratio"].to_numpy()
    parts += ["### RMNet / baseline speed ratios: paper (V100) and predicted (V100, H100)", "",
              ratio_table.drop(columns=["group"]).rename(columns={"paper_ratio": "paper V100"}).to_markdown(
                  index=False, floatfmt=".3f"), ""]

    parts += ["### Where RM's deploy-form speed-up comes from (predicted, direct conv)", "",
              "Change of the predicted batch time from the training form (eval mode: BN and residual adds are "
              "separate memory-bound kernels) to the RM deploy form, split into memory-bound kernels, "
              "compute-bound kernels (the deploy form does more FLOPs: negative) and launches. "
              "`memory_share`: the memory part over the total saving (above 1 when the FLOPs cost time).", ""]
    for device, dtype in (("v100", "fp32"), ("h100", "fp32"), ("h100", "fp16")):
        sources = speedup_sources(predictions, device, dtype)
        if len(sources):
            parts += [f"#### {device.upper()} {dtype}", "", sources.to_markdown(index=False, floatfmt=".3g"), ""]
    return "\n".join(parts)


def build(predictions_csv: str | os.PathLike, markdown: str | os.PathLike | None = None) -> str:
    text = "# Cost model: predicted GPU throughput beside the paper's\n\n" + to_markdown(pd.read_csv(predictions_csv))
    if markdown is not None:
        write_text_atomic(text, markdown)
    return text
