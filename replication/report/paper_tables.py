"""The paper's tables regenerated from results CSVs alone, as Markdown and LaTeX, each with the paper's
value, ours and the difference where the paper has a number for the same row."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import timm

from .. import rm
from ..atomic_io import write_text_atomic
from ..data.specs import DATASET_SPECS
from ..paper import reported, table4_text
from ..stats import summarize_seeds


def write_table(frame: pd.DataFrame, stem: str | os.PathLike, title: str, note: str = "") -> list[Path]:
    """``<stem>.md`` and ``<stem>.tex`` (atomic writes)."""
    stem = Path(stem)
    markdown = f"# {title}\n\n{note}\n\n{frame.to_markdown(index=False, floatfmt='.4g')}\n"
    latex = frame.to_latex(index=False, float_format="%.4g", caption=title, escape=True)
    return [write_text_atomic(markdown, stem.with_suffix(".md")), write_text_atomic(latex, stem.with_suffix(".tex"))]


def _context_note(frame: pd.DataFrame) -> str:
    profiles = ", ".join(sorted(map(str, frame["profile"].dropna().unique()))) if "profile" in frame else "?"
    datasets = ", ".join(sorted(map(str, frame["dataset"].dropna().unique()))) if "dataset" in frame else "?"
    return (f"Profile: {profiles}; measured on {datasets}. The embedded and ci profiles are smoke runs (tiny "
            "models, few images): they show the pipeline works, not the paper's accuracy.")


# Our dataset name -> the paper's (datasets the paper reports on only).
PAPER_DATASET = {spec.name: spec.paper_name for spec in DATASET_SPECS.values() if spec.paper_name}


def format_ci(mean: float, low: float, high: float, digits: int = 2) -> str:
    """``85.12 [84.30, 85.94]``; the bare mean where there is no interval (one seed)."""
    if pd.isna(mean):
        return "n/a"
    if pd.isna(low) or pd.isna(high):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _status(row) -> str:
    if getattr(row, "did_not_train", False):
        return "did not train"
    failed = int(getattr(row, "did_not_train_seeds", 0) or 0)
    return f"{failed} seed(s) did not train" if failed else "trained"


def accuracy_table(summary_csv: str | os.PathLike, paper_table: str, stem: str | os.PathLike,
                   title: str) -> pd.DataFrame:
    """Our top-1 (mean and 95 % CI over seeds) / params / MACs per run, beside the paper's top-1 for the
    same backbone on each dataset the paper reports. A difference is given only where our dataset is
    the paper's: a Fashion-MNIST number is never subtracted from a CIFAR one."""
    summary = pd.read_csv(summary_csv)
    paper = reported(paper_table)
    paper_datasets = list(dict.fromkeys(paper["dataset"]))
    paper_top1 = paper.set_index(["dataset", "backbone"])["top1_acc"]
    rows = []
    for r in summary.itertuples():
        row = {"dataset": r.dataset, "model": r.label, "run": r.run, "params_m": r.params / 1e6,
               "macs_g": r.macs / 1e9, "epochs": r.epochs, "seeds": r.n_seeds,
               "top1 (95% CI)": format_ci(r.top1, r.top1_ci_low, r.top1_ci_high), "status": _status(r)}
        for dataset in paper_datasets:
            row[f"paper {dataset}"] = float(paper_top1.get((dataset, r.label), float("nan")))
        same = PAPER_DATASET.get(r.dataset)
        row["difference (same dataset)"] = (r.top1 - row[f"paper {same}"]) if same in paper_datasets else float("nan")
        rows.append(row)
    out = pd.DataFrame(rows)
    write_table(out, stem, title, _context_note(summary) + " The paper columns are the paper's setting "
                "(full CIFAR / ImageNet, full width, 120-200 epochs); a difference is computed only on the "
                "same dataset.")
    return out


def mobilenet_table(csv_files: list[str], stem: str | os.PathLike, speed_pairs_csv: str | os.PathLike | None = None
                    ) -> pd.DataFrame:
    """Table 2: top-1 (mean and 95 % CI over seeds) of MobileNetV2, RMNetV1 (V2 converted, no training)
    and MobileNetV1 from scratch, beside the paper's per-dataset values; the difference only on the
    same dataset; and RMNetV1's speed over MobileNetV2 (paired ratio) where this profile measured it."""
    ours = pd.concat([pd.read_csv(path) for path in csv_files], ignore_index=True)
    paper = reported("table2_mobilenet")
    paper_datasets = list(dict.fromkeys(paper["dataset"]))
    paper_top1 = paper.set_index(["dataset", "backbone"])["top1_acc"]
    paper_macs = paper.groupby("backbone")["flops_m"].first()
    rows = []
    for (dataset, backbone), group in ours.groupby(["dataset", "backbone"], sort=False):
        top1 = summarize_seeds(group["top1"])
        row = {"dataset": dataset, "backbone": backbone, "initial": group["initial"].iloc[0],
               "trained": group["trained"].iloc[0], "macs_m": group["macs"].iloc[0] / 1e6,
               "macs_m paper (CIFAR)": paper_macs.get(backbone, float("nan")), "seeds": top1.n,
               "top1 (95% CI)": format_ci(top1.mean, top1.ci_low, top1.ci_high)}
        for paper_dataset in paper_datasets:
            row[f"paper {paper_dataset}"] = float(paper_top1.get((paper_dataset, backbone), float("nan")))
        same = PAPER_DATASET.get(dataset)
        row["difference (same dataset)"] = top1.mean - row[f"paper {same}"] if same in paper_datasets else float("nan")
        rows.append(row)
    out = pd.DataFrame(rows)
    note = (_context_note(ours) + " RMNetV1 is the trained MobileNetV2 converted without training: its accuracy "
            "must equal V2's. A difference is computed only on the same dataset.")
    if speed_pairs_csv is not None and Path(speed_pairs_csv).exists():
        pairs = pd.read_csv(speed_pairs_csv)
        pair = pairs[pairs["claim_id"] == "table2_rmnetv1_faster_than_v2"]
        if len(pair) and pair["status"].iloc[0] == "ok":
            p = pair.iloc[0]
            flag = " (unstable)" if bool(p["unstable"]) else ""
            note += (f" Speed, RMNetV1 (= MobileNetV1 form) over MobileNetV2: "
                     f"{format_ci(p['ratio'], p['ratio_ci_low'], p['ratio_ci_high'])}{flag}, paired, "
                     f"{p['device_name']}, {int(p['threads'])} threads, batch {int(p['batch_size'])}, "
                     f"input {p['input_size']} (paper: 27720 / 19119 = 1.45 on a V100).")
    write_table(out, stem, "Table 2: MobileNetV2 -> RMNetV1 -> MobileNetV1", note)
    return out


def structure_table(stem: str | os.PathLike) -> list[Path]:
    """Table 4: the deploy structure of RMNet 26x3_32 (CIFAR-10) printed by this project, beside the paper's."""
    plain = rm.convert(timm.create_model("rmnet26x3_32_cifar", num_classes=10).eval())
    ours, theirs = repr(plain).splitlines(), table4_text().strip().splitlines()
    width = max(map(len, ours))
    lines = [f"{a:<{width}}  |  {b}" for a, b in zip(ours, theirs + [""] * (len(ours) - len(theirs)))]
    text = "# Table 4: RMNet 26x3_32 deploy structure (ours | paper)\n\n```\n" + "\n".join(lines) + "\n```\n"
    return [write_text_atomic(text, Path(stem).with_suffix(".md"))]
