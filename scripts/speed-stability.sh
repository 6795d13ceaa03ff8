#!/usr/bin/env bash
# Three separate runs of the paired-ratio benchmark (RMNet 26x3_32 deploy over ResNet 34, CIFAR input,
# batch 16, CPU), each pooled over 5 fresh worker processes (pyperf's point: some noise only shows between
# processes), and the three ratios side by side. The goal: they agree within +-3 % on a quiet machine.
#   bash scripts/speed-stability.sh [--one-process | --busy] [output folder]
# (default folder: results/manual/benchmarks/speed_stability; --one-process: each run is the benchmark timed in
# pytest's own process instead, for comparison)
# Writes run1.json..run3.json (pytest-benchmark) and speed_stability.csv into the folder. Run it on a
# machine that nothing else is using; every run records its load average and a busy flag.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
# --busy: the busy-machine benchmark instead (tests/benchmarks/test_busy_machine.py): the ratio idle, then
# three times beside a competing `yes > /dev/null`, wall clock + median and thread clock + minimum side by
# side; the numbers go to <folder>/busy.json (default folder: results/benchmarks/speed_stability_busy).
if [ "${1:-}" = "--busy" ]; then
  out="${2:-results/benchmarks/speed_stability_busy}"
  mkdir -p "$out"
  exec "$python" -m pytest tests/benchmarks/test_busy_machine.py --benchmark-only -q -s -p no:cacheprovider \
    --benchmark-json "$out/busy.json"
fi
select=worker
if [ "${1:-}" = "--one-process" ]; then
  select="not worker"
  shift
fi
out="${1:-results/manual/benchmarks/speed_stability}"
mkdir -p "$out"
for run in 1 2 3; do
  echo "run $run of 3 ..." >&2
  "$python" -m pytest tests/benchmarks/test_paired_ratio.py --benchmark-only -q -p no:cacheprovider -k "$select" \
    --benchmark-json "$out/run$run.json" >&2
done
"$python" - "$out" <<'PY'
import json
import statistics
import sys
from pathlib import Path

import pandas as pd

out = Path(sys.argv[1])
rows = []
for run in (1, 2, 3):
    [bench] = json.loads((out / f"run{run}.json").read_text())["benchmarks"]
    info = bench["extra_info"]
    rows.append({"run": run, **{k: info[k] for k in ("ratio", "ratio_ci_low", "ratio_ci_high", "rounds", "workers", "unstable",
                                                      "unstable_reason", "busy", "other_cpu", "load_start",
                                                      "load_end", "images_per_sec_a", "images_per_sec_b",
                                                      "threads", "device_name")}})
frame = pd.DataFrame(rows)
median = statistics.median(frame["ratio"])
frame["off_median_pct"] = 100 * (frame["ratio"] / median - 1)
frame.to_csv(out / "speed_stability.csv", index=False)
for r in frame.itertuples():
    flags = " ".join(f for f, on in (("unstable", r.unstable), ("busy", r.busy)) if on)
    print(f"run {r.run}: {r.ratio:.3f} [{r.ratio_ci_low:.3f}, {r.ratio_ci_high:.3f}], {r.rounds} rounds in {r.workers} workers, "
          f"load {r.load_start:.1f} -> {r.load_end:.1f}, others' CPU {100 * r.other_cpu:.0f} % {flags}".rstrip())
spread = frame["off_median_pct"].abs().max()
print(f"three ratios {', '.join(f'{v:.3f}' for v in frame['ratio'])}: within +-{spread:.1f} % of their median "
      f"{median:.3f} ({'meets' if spread <= 3 else 'misses'} the +-3 % goal); {out / 'speed_stability.csv'}")
PY
