"""Speed verdicts: the paired speed ratios of the speed claims (CPU rows from the profile, GPU rows from
``scripts/gpu-check.sh``) and the Figure 7 ablation (trend, level and batch scaling)."""

from __future__ import annotations

import math

import pandas as pd

from .evidence import NAN, Evidence, Verdict, not_run
from .ledger import Claim
from .rules import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, decide, decide_inside, how_to_run, join


def _gpu_rows(evidence: Evidence, claim: Claim) -> pd.DataFrame | None:
    """The GPU check's rows for a speed claim (``<gpu_dir>/gpu-*.csv``, column ``claim_id``)."""
    if evidence.gpu_ratios is None:
        return None
    rows = evidence.gpu_ratios[evidence.gpu_ratios["claim_id"] == claim.id]
    return rows if len(rows) else None


def _speed_verdict(claim: Claim, row: pd.Series, evidence_csv: str) -> Verdict:
    if str(row.get("status", "ok")) != "ok":
        return Verdict(INCONCLUSIVE, evidence=evidence_csv, note=f"measurement failed: {row['status']}",
                       device=str(row.get("device", "")))
    low, high = float(row["ratio_ci_low"]), float(row["ratio_ci_high"])
    if claim.measure.get("expect") == "equal":
        tolerance = float(claim.measure.get("tolerance", 0.05))
        decided = decide_inside(low, high, 1 - tolerance, 1 + tolerance)
    else:
        decided = decide(low, high, 1.0)
    unstable = bool(row.get("unstable", False))
    verdict = INCONCLUSIVE if unstable else decided
    clock = f", clock {row['clock']}" if "clock" in row and isinstance(row["clock"], str) else ""
    dtype = str(row.get("dtype", ""))
    layout = ", channels_last" if bool(row.get("channels_last", False)) else ""
    threads = f", {int(row['threads'])} threads" if not pd.isna(row.get("threads")) else ""
    scope = (f"{row['device_name']} ({row['device']}){threads}, batch {int(row['batch_size'])}, "
             f"input {row['input_size']}, {dtype}{layout}{clock}, untrained weights")
    load = (f"load average {float(row['load_start']):.1f} -> {float(row['load_end']):.1f}"
            if "load_start" in row and not pd.isna(row["load_start"]) else "")
    return Verdict(verdict, float(row["ratio"]), low, high, NAN, "", scope, evidence_csv,
                   join(f"{float(row['images_per_sec_a']):.0f} vs {float(row['images_per_sec_b']):.0f} images/s, "
                        f"{int(row['rounds'])} paired rounds",
                        f"unstable ({row.get('unstable_reason', '') or 'CI wider than +-5 %'})" if unstable else "",
                        "busy: other processes used the CPU meanwhile" if bool(row.get("busy", False)) else "",
                        load), device=str(row["device"]).split(":")[0])


def speed_ratio(claim: Claim, evidence: Evidence) -> list[Verdict]:
    """The profile's CPU pair, and beside it one GPU verdict per dataset from the GPU check's rows at the
    paper's setting (float32, channels_last off); the other settings the check measured are in its note."""
    verdicts = []
    frame = evidence.csv("speed/pairs.csv")
    rows = frame[frame["claim_id"] == claim.id] if frame is not None else None
    if rows is not None and len(rows):
        verdicts.append(_speed_verdict(claim, rows.iloc[-1], "speed/pairs.csv"))
    gpu = _gpu_rows(evidence, claim)
    if gpu is not None:
        gpu = gpu[gpu["status"].astype(str) == "ok"] if "status" in gpu else gpu
        gpu = gpu.assign(dataset=gpu["dataset"].fillna("").astype(str) if "dataset" in gpu else "")
        # a pair the check times under two headings (an RM form over its residual form that is also the
        # paper's baseline) is one measurement per setting
        gpu = gpu.drop_duplicates(subset=[c for c in ("dataset", "dtype", "channels_last", "a_model", "a_form",
                                                      "b_model", "b_form") if c in gpu], keep="last")
        paper_setting = (gpu["dtype"].astype(str) == "float32") & ~gpu["channels_last"].astype(bool)
        for dataset, rows_here in gpu[paper_setting].groupby("dataset", sort=True):
            verdict = _speed_verdict(claim, rows_here.iloc[-1], f"{evidence.gpu_dir}/gpu-*.csv")
            others = gpu[~paper_setting & (gpu["dataset"] == dataset)]
            listing = "; ".join(f"{r.dtype}{', channels_last' if bool(r.channels_last) else ''}: {r.ratio:.3f} "
                                f"[{r.ratio_ci_low:.3f}, {r.ratio_ci_high:.3f}]" for r in others.itertuples())
            verdict.dataset = dataset
            verdict.note = join(verdict.note, f"other settings: {listing}" if listing else "")
            verdicts.append(verdict)
    if not verdicts:
        why = how_to_run("cuda") if claim.requires == "cuda" else "no paired speed measurement: rule speed_pairs"
        return [not_run(why)]
    return verdicts


def _ablation_rows(evidence: Evidence, factor: str) -> pd.DataFrame | None:
    frame = evidence.csv("ablation/speed.csv")
    if frame is None:
        return None
    rows = frame[frame["factor"] == factor].sort_values("value")
    return rows if len(rows) else None


def _ablation_scope(row: pd.Series) -> str:
    return (f"{row['device_name']} ({row['device']}), {int(row['threads'])} threads, {row['model']}, "
            f"input {row['input_size']}, untrained weights")


def _half_width(row: pd.Series) -> float:
    return (float(row["speedup_ci_high"]) - float(row["speedup_ci_low"])) / 2


def ablation_trend(claim: Claim, evidence: Evidence) -> list[Verdict]:
    """Speed-up at the sweep's smallest value minus at its largest; the CI combines the two paired CIs'
    half-widths in quadrature. The endpoints decide; an unstable endpoint makes it inconclusive."""
    factor = claim.measure["factor"]
    rows = _ablation_rows(evidence, factor)
    if rows is None:
        configured = bool(evidence.ablation_sweeps.get(factor))
        return [not_run(evidence.absent("ablation/speed.csv", configured,
                                        f"no {factor} sweep in this profile: ablation.sweeps.{factor}"))]
    if len(rows) < 2:
        return [Verdict(INCONCLUSIVE, evidence="ablation/speed.csv", note=f"one {factor} value only")]
    small, large = rows.iloc[0], rows.iloc[-1]
    effect = float(small["speedup"]) - float(large["speedup"])
    half = math.hypot(_half_width(small), _half_width(large))
    unstable = [f"{factor} {int(r['value'])}" for r in (small, large) if bool(r.get("unstable", False))]
    verdict = INCONCLUSIVE if unstable else decide(effect - half, effect + half)
    curve = ", ".join(f"{int(r.value)}: {r.speedup:.2f} [{r.speedup_ci_low:.2f}, {r.speedup_ci_high:.2f}]"
                      for r in rows.itertuples())
    return [Verdict(verdict, effect, effect - half, effect + half, dataset="", scope=_ablation_scope(small),
                    evidence="ablation/speed.csv",
                    note=join(f"speed-up (RM / residual form) by {factor}: {curve}; effect = smallest - largest",
                              f"unstable endpoint: {', '.join(unstable)}" if unstable else ""))]


def ablation_level(claim: Claim, evidence: Evidence) -> list[Verdict]:
    frame = evidence.csv("ablation/speed.csv")
    factors = [f for f in ("batch_size", "width", "expand_ratio", "group_width")
               if frame is not None and (frame["factor"] == f).any()]
    if not factors:
        return [not_run(evidence.absent("ablation/speed.csv", bool(evidence.ablation_sweeps),
                                        "no ablation sweeps in this profile: ablation.sweeps"))]
    lowest = [_ablation_rows(evidence, f).iloc[0] for f in factors]  # type: ignore[union-attr]
    decided = [INCONCLUSIVE if bool(r.get("unstable", False))
               else decide(r["speedup_ci_low"], r["speedup_ci_high"], 1.0) for r in lowest]
    verdict = (REPRODUCED if all(d == REPRODUCED for d in decided) else
               NOT_REPRODUCED if all(d == NOT_REPRODUCED for d in decided) else INCONCLUSIVE)
    first = lowest[0]
    listing = "; ".join(f"{f} {int(r['value'])}: {r['speedup']:.2f} [{r['speedup_ci_low']:.2f}, "
                        f"{r['speedup_ci_high']:.2f}] ({d})" for f, r, d in zip(factors, lowest, decided))
    return [Verdict(verdict, float(first["speedup"]), float(first["speedup_ci_low"]), float(first["speedup_ci_high"]),
                    scope=_ablation_scope(first), evidence="ablation/speed.csv",
                    note=f"speed-up (RM / residual form) at each sweep's lowest value: {listing}; effect shown at "
                         f"the smallest batch")]


def ablation_scaling(claim: Claim, evidence: Evidence) -> list[Verdict]:
    rows = _ablation_rows(evidence, "batch_scaling")
    if rows is None:
        configured = len(evidence.ablation_sweeps.get("batch_size", [])) > 1
        return [not_run(evidence.absent("ablation/speed.csv", configured,
                                        "no batch-scaling pairs: ablation.sweeps.batch_size needs two or more sizes"))]
    threshold = float(claim.measure.get("threshold", 0.8))
    row = rows.iloc[0]
    unstable = bool(row.get("unstable", False))
    verdict = INCONCLUSIVE if unstable else decide(row["speedup_ci_low"], row["speedup_ci_high"], threshold)
    listing = ", ".join(f"{int(r.reference_batch)} -> {int(r.value)}: {r.speedup:.2f} [{r.speedup_ci_low:.2f}, "
                        f"{r.speedup_ci_high:.2f}]" for r in rows.itertuples())
    return [Verdict(verdict, float(row["speedup"]), float(row["speedup_ci_low"]), float(row["speedup_ci_high"]),
                    scope=_ablation_scope(row), evidence="ablation/speed.csv",
                    note=join(f"scaling efficiency time(small) / time(large batch), RM form: {listing}; the first "
                              f"decides", "unstable" if unstable else ""))]
