"""The README's verdict summary, generated from a profile's claims.csv and results CSVs alone.

The block between ``<!-- verdicts:start -->`` and ``<!-- verdicts:end -->`` in README.md is this
module's output: the scope (datasets, sizes, epochs, seeds, the CPU / GPU models and threads the rows
record, the commits that produced them), the verdict counts, and every decided claim. Nothing in it is
written by hand, so it says nothing the claims table does not::

    python -m replication.report.readme_summary README.md results/evidence        # rewrite the block
    python -m replication.report.readme_summary README.md results/evidence --check  # exit 1 on drift
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from ..atomic_io import write_text_atomic
from ..layout import GPU_CHECK_DIR
from .claims_table import readme_table

START, END = "<!-- verdicts:start -->", "<!-- verdicts:end -->"
NOT_RUN = "not run in this profile"



def _join(values) -> str:
    """The distinct values, in order: numbers by value (batch 1, 8, 16, 32, not 1, 16, 32, 8), text as text."""
    distinct = {str(v) for v in values if str(v) and str(v) != "nan"}
    numeric = all(v.lstrip("-").replace(".", "", 1).isdigit() for v in distinct)
    return ", ".join(sorted(distinct, key=float) if numeric else sorted(distinct))


def _last_rows(root: Path, pattern: str) -> pd.DataFrame:
    frames = [pd.read_csv(path).iloc[[-1]] for path in sorted(root.glob(pattern)) if path.stat().st_size]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _speed_rows(root: Path) -> pd.DataFrame:
    frames = [pd.read_csv(root / name) for name in ("speed/pairs.csv", "ablation/speed.csv")
              if (root / name).exists()]
    pruning = sorted(root.glob("pruning/*.csv"))
    frames += [pd.read_csv(path) for path in pruning]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def scope_text(results_dir: str | os.PathLike, gpu_dir: str | os.PathLike | None = None) -> str:
    """What the rows say about where they were measured (never written by hand)."""
    root = Path(results_dir)
    lines = []
    training = _last_rows(root, "train/*/*/seed*/metrics.csv")
    if len(training):
        devices = _join(f"{r.device} ({r.device_name})" if "device_name" in training else r.device
                        for r in training.itertuples())
        threads = _join(training["threads"].dropna().astype(int)) if "threads" in training else "unrecorded"
        lines.append(f"- **Accuracy**: {len(training)} training runs on {_join(training['dataset'])} at "
                     f"{_join(training['image_size'].astype(int))} px, {_join(training['train_samples'].astype(int))} "
                     f"training / {_join(training['test_samples'].astype(int))} test images per seed, "
                     f"{_join(training['epochs'].astype(int))} epochs, seeds {_join(training['seed'].astype(int))}; "
                     f"trained on {devices}, {threads} thread(s) per run.")
    speed = _speed_rows(root)
    if len(speed):
        clock = f", clock {_join(speed['clock'])}" if "clock" in speed else ""
        lines.append(f"- **Speed**: {len(speed)} paired ratios (untrained weights) on {_join(speed['device_name'])} "
                     f"({_join(speed['device'])}), {_join(speed['threads'].astype(int))} thread(s), "
                     f"{_join(speed['dtype'])}, batch {_join(speed['batch_size'].astype(int))}{clock}.")
    gpu_paths = sorted(Path(gpu_dir).glob("gpu-*.csv")) if gpu_dir is not None else []
    gpu = pd.concat([pd.read_csv(path) for path in gpu_paths], ignore_index=True) if gpu_paths else pd.DataFrame()
    if len(gpu) and "section" in gpu:
        ratios = gpu[(gpu["section"] == "ratio") & (gpu["status"] == "ok")]
        lines.append(f"- **GPU speed** (`scripts/gpu-check.sh`, {', '.join(p.name for p in gpu_paths)}): "
                     f"{len(ratios)} paired ratios on {_join(gpu['device_name'])}, "
                     f"torch {_join(gpu['torch_version'])}, "
                     f"batch {_join(ratios['batch_size'].astype(int))}, {_join(ratios['dtype'])}, channels_last "
                     f"{_join(ratios['channels_last'].astype(bool).map({True: 'on', False: 'off'}))}, wall clock; "
                     f"the verdicts use float32 with channels_last off (the paper's setting).")
    commits = set()
    for path in [*root.glob("**/*.csv")]:
        try:
            frame = pd.read_csv(path, usecols=["suite_commit"])
        except (ValueError, pd.errors.EmptyDataError):
            continue
        commits |= {str(c)[:10] for c in frame["suite_commit"].dropna()}
    if commits:
        lines.append(f"- **Produced by** suite commit(s) {_join(commits)}.")
    return "\n".join(lines)


def summary_block(results_dir: str | os.PathLike, claims_csv: str | os.PathLike | None = None,
                  gpu_dir: str | os.PathLike | None = GPU_CHECK_DIR) -> str:
    root = Path(results_dir)
    claims_csv = Path(claims_csv) if claims_csv is not None else root / "claims.csv"
    frame = pd.read_csv(claims_csv, keep_default_na=False, na_values=[""])
    counts = frame["verdict"].value_counts()
    decided = frame[frame["verdict"] != NOT_RUN]
    profile = _join(frame["profile"])
    table = readme_table(decided)
    not_run = frame[frame["verdict"] == NOT_RUN]
    return "\n".join([
        START,
        f"Verdicts of profile `{profile}` ({len(frame)} rows for {frame['id'].nunique()} claims): "
        + ", ".join(f"{name} {count}" for name, count in counts.items()) + ".",
        "",
        "Where the rows were measured (read from the results CSVs):",
        "",
        scope_text(root, gpu_dir),
        "",
        table,
        "",
        f"Not run in this profile: {len(not_run)} rows ({not_run['id'].nunique()} claims: ImageNet, CIFAR or a GPU); "
        f"each says what would run it in the full table.",
        END,
    ])


def replace_block(text: str, block: str) -> str:
    if START not in text or END not in text:
        raise ValueError(f"README has no {START} ... {END} block")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    return before + block + after


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m replication.report.readme_summary",
                                     description="Regenerate (or check) the README's verdict summary.")
    parser.add_argument("readme", type=Path)
    parser.add_argument("results_dir", type=Path, help="a profile's results folder, e.g. results/evidence")
    parser.add_argument("--check", action="store_true", help="exit 1 when the README's block differs")
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    updated = replace_block(text, summary_block(args.results_dir))
    if args.check:
        if updated != text:
            print(f"{args.readme}: the verdict summary differs from {args.results_dir}/claims.csv; regenerate it with "
                  f"python -m replication.report.readme_summary {args.readme} {args.results_dir}", file=sys.stderr)
            return 1
        return 0
    write_text_atomic(updated, args.readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
