"""Run ``inspect`` over every model name the installed timm registers; write a CSV and a summary.

    .venv/bin/python scripts/inspect_timm.py --output results/manual/inspect/timm_models.csv
    .venv/bin/python scripts/inspect_timm.py --output results/manual/inspect/timm_models.csv --summary-only

Names are timm's architectures (``timm.list_models()``: no pretrained tags, so no duplicates), without
this project's own registrations. Each model is built on the meta device without weights and
inspected at its own default input size; a constructor that needs real tensors is built on the CPU
(``--no-cpu-fallback``: recorded as an error instead).
Rows are appended as they finish and names already in the CSV are skipped, so an interrupted run
resumes. Not part of CI: about a second per model, ~20 minutes for all of timm on a busy 2-core CPU.
"""

from __future__ import annotations

import argparse
import csv
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd

FIELDS = ("model", "status", "model_type", "residual_blocks", "blocks_converted", "failing_path", "failing_type",
          "reason", "input_size", "params_before", "params_after", "macs_before", "macs_after", "reserved",
          "device", "seconds")


class _Timeout(Exception):
    pass


def _alarm(signum, frame):  # noqa: ARG001
    raise _Timeout


def sweep(output: Path, names: list[str], timeout: int, cpu_fallback: bool) -> None:
    from replication.inspection import inspect_model

    done = set(pd.read_csv(output)["model"]) if output.exists() else set()
    output.parent.mkdir(parents=True, exist_ok=True)
    new_file = not output.exists()
    signal.signal(signal.SIGALRM, _alarm)
    with output.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        if new_file:
            writer.writeheader()
        for index, name in enumerate(names):
            if name in done:
                continue
            start = time.perf_counter()
            signal.alarm(timeout)
            try:
                report = inspect_model(name, cpu_fallback=cpu_fallback)
                row = {field: getattr(report, field) for field in FIELDS if hasattr(report, field)}
                reason = report.reason.split(". Supported: ")[0]  # the list of readers is the same every time
                row["reason"] = reason.splitlines()[0][:300] if reason else ""
            except _Timeout:
                row = {"model": name, "status": "error", "reason": f"inspect took over {timeout} s"}
            except Exception as error:  # noqa: BLE001  (one broken model must not stop the sweep)
                row = {"model": name, "status": "error",
                       "reason": f"{type(error).__name__}: {str(error).splitlines()[0][:250] if str(error) else ''}"}
            finally:
                signal.alarm(0)
            row["model"] = name
            row["seconds"] = round(time.perf_counter() - start, 2)
            writer.writerow(row)
            handle.flush()
            print(f"[{index + 1}/{len(names)}] {name}: {row['status']} ({row['seconds']} s)", flush=True)


def _category(row: pd.Series) -> str:
    """A short reason: the unsupported model class, or the module type inside a residual block."""
    if row["status"] == "error":
        return f"error: {str(row['reason']).split(':')[0]}"
    if "no RM conversion for this model type" in str(row["reason"]):
        return "no RM reader for the model class"
    return f"{row['failing_type']} in a residual block or stem"


def summary(output: Path) -> str:
    frame = pd.read_csv(output)
    counts = frame["status"].value_counts()
    lines = [f"{len(frame)} timm architectures inspected (timm's registry without pretrained tags):", ""]
    for status in ("exact", "refused", "refused at this size", "error"):
        if status in counts:
            lines.append(f"- {status}: {counts[status]}")
    refused = frame[frame["status"].isin(["refused", "error"])]
    reasons = Counter(_category(row) for _, row in refused.iterrows())
    lines += ["", "Most common reasons for a refusal:", ""]
    lines += [f"- {reason}: {count}" for reason, count in reasons.most_common(8)]
    no_reader = refused[refused["reason"].str.contains("no RM conversion for this model type", na=False)]
    classes = Counter(no_reader["model_type"])
    lines += ["", "Model classes without a reader (most names first): "
              + ", ".join(f"{cls} ({count})" for cls, count in classes.most_common(10))]
    blocked = refused[~refused.index.isin(no_reader.index) & (refused["status"] == "refused")]
    modules = Counter(blocked["failing_type"])
    lines += ["", "Inside supported families, what stops a block (module type): "
              + ", ".join(f"{cls} ({count})" for cls, count in modules.most_common(10))]
    exact = frame[frame["status"] == "exact"]
    lines += ["", "Converting families: " + ", ".join(f"{cls} ({count})"
                                                      for cls, count in Counter(exact["model_type"]).most_common())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("results/manual/inspect/timm_models.csv"))
    parser.add_argument("--limit", type=int, help="only the first N names (a quick look)")
    parser.add_argument("--timeout", type=int, default=120, help="seconds per model before it is recorded as an error")
    parser.add_argument("--no-cpu-fallback", action="store_true",
                        help="record a model whose constructor cannot run on the meta device as an error instead "
                             "of building it on the CPU (a giant model needs tens of GB there)")
    parser.add_argument("--summary-only", action="store_true", help="print the summary of an existing CSV")
    args = parser.parse_args(argv)
    if not args.summary_only:
        import timm

        import replication.models

        own = set(replication.models.registered_models())
        names = [name for name in timm.list_models() if name not in own]
        sweep(args.output, names[:args.limit] if args.limit else names, args.timeout, not args.no_cpu_fallback)
    print(summary(args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
