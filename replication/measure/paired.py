"""Speed *ratios* that survive a noisy machine: two models timed as a pair, interleaved.

Timing model A now and model B a minute later measures whatever else the machine did in between. A
pair is measured in one process, with the same threads, input and dtype, both warmed up, then in
alternating blocks (A B, B A, A B, ...), so a slow spell hits both sides of a round alike. The ratio
is the median of the per-round ratios, with a bootstrap 95 % confidence interval. A ratio whose CI is
wider than ``tolerance`` (relative half-width) gets more rounds (doubling), up to ``max_rounds`` or a
time cap; if it is still wide it is flagged ``unstable`` and must not be reported as a clean number
(:func:`format_ratio` never prints it without its interval and the flag).

What is taken from pyperf and pytest-benchmark, and what is not:

- pyperf warns when a benchmark looks unstable and when single values are too short for the clock
  (under 1 ms); here a wide CI or a timed block under ``MIN_BLOCK_SECONDS`` flags the pair
  ``unstable`` with the reason. pyperf spreads a benchmark over separate worker processes, because some
  noise (memory layout, frequency state, the host's slow drifts) is fixed within a process and only
  shows between processes: :func:`measure_pair_in_workers` runs the pair in several fresh processes
  and pools them, with a bootstrap over workers, so its CI covers that noise too.
- pytest-benchmark counts outliers beyond 1.5 IQR of the quartiles; ``outliers`` counts per-round
  ratios outside Tukey's fences. They are kept (the median is robust to them), only counted.
- Neither measures contention. Every pair records the 1-minute load average at its start and end
  and, on Linux, the share of the machine's CPU time that *other* processes used while it ran
  (``/proc/stat`` minus this process's CPU time); above ``BUSY_SHARE`` the pair is flagged ``busy``.
  A busy pair's ratio is still paired (both sides saw the same machine); its absolute images/s are not
  comparable with a quiet run's.

For a machine that is never idle (a workstation), ``ThroughputConfig`` offers what the field does
against contention: ``clock="thread"`` (per-thread CPU time, one torch thread: time another process
holds the core is not counted), ``statistic="min"`` (the ratio of each side's fastest round: noise only
ever slows a round down, so the minimum is what survives it; its CI bootstraps rounds, paired), and
``interleave=k`` (each side's ``iters`` batches of a round split into k alternating blocks, A B B A ...,
so a slow spell lands on both sides more evenly). Every row records ``clock`` and ``statistic``.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .throughput import (
    ThroughputConfig,
    ThroughputError,
    autocast,
    check_input,
    clock_of,
    is_out_of_memory,
    out_of_memory_error,
    prepare,
    synchronizer,
)

BUSY_SHARE = 0.10          # other processes used more than 10 % of the machine's CPU time: busy
MIN_BLOCK_SECONDS = 1e-3   # pyperf's "shortest value" warning: a block this short is mostly clock noise


@dataclass
class PairedRatio:
    ratio: float                 # median over rounds of images/s(A) / images/s(B)
    ci_low: float                # bootstrap 95 % CI of that median
    ci_high: float
    rounds: int
    images_per_sec_a: float      # median over rounds
    images_per_sec_b: float
    unstable: bool               # see ``unstable_reason``
    load_start: float            # 1-minute load average before and after the measurement
    load_end: float
    busy: bool = False           # other processes used more than BUSY_SHARE of the CPU meanwhile
    other_cpu: float = float("nan")  # that share (NaN where /proc/stat is not available)
    outliers: int = 0            # per-round ratios beyond 1.5 IQR of the quartiles (kept, only counted)
    elapsed_s: float = float("nan")
    capped: bool = False         # stopped re-measuring at the time cap with the CI still wide
    unstable_reason: str = ""
    workers: int = 1             # separate processes the rounds come from (measure_pair_in_workers)
    round_ratios: tuple[float, ...] = field(default=(), repr=False)  # per round, in order (not a CSV column)
    round_rates: tuple[tuple[float, float], ...] = field(default=(), repr=False)  # (A, B) images/s per round
    clock: str = "wall"          # ThroughputConfig.clock the rounds were timed with
    statistic: str = "median"    # median of per-round ratios, or min: fastest round of A over fastest of B

    def as_row(self, prefix: str = "", pair_id: str | None = None) -> dict[str, object]:
        row: dict[str, object] = {
            f"{prefix}ratio": self.ratio, f"{prefix}ratio_ci_low": self.ci_low,
            f"{prefix}ratio_ci_high": self.ci_high, f"{prefix}rounds": self.rounds,
            f"{prefix}unstable": self.unstable, f"{prefix}unstable_reason": self.unstable_reason,
            f"{prefix}outliers": self.outliers, f"{prefix}pair_seconds": self.elapsed_s,
            f"{prefix}workers": self.workers, "clock": self.clock, "statistic": self.statistic,
            "load_start": self.load_start, "load_end": self.load_end, "other_cpu": self.other_cpu, "busy": self.busy}
        if pair_id is not None:
            row[f"{prefix}pair_id"] = pair_id
        return row


def format_ratio(ratio: float, low: float, high: float, unstable: bool = False, digits: int = 2) -> str:
    """``1.23 [1.21, 1.25]``; an unstable ratio always carries its interval and the word ``unstable``."""
    if ratio is None or ratio != ratio:  # None or NaN
        return "n/a"
    if low != low or high != high:
        text = f"{ratio:.{digits}f} [no CI]"
    else:
        text = f"{ratio:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
    return f"{text} unstable" if unstable else text


def bootstrap_median_ci(values: list[float], *, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95 % CI of the median of ``values`` (NaNs for fewer than two values)."""
    data = np.asarray(values, dtype=float)
    if data.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(data, size=(resamples, data.size), replace=True), axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(low), float(high)


def ratio_statistic(rates: Sequence[tuple[float, float]], statistic: str) -> float:
    """Ratio A / B of per-round (A, B) rates: median of the per-round ratios, or (``min``) the fastest
    round of A over the fastest round of B (the minimum time of each side)."""
    if statistic == "min":
        return max(a for a, _ in rates) / max(b for _, b in rates)
    return statistics.median(a / b for a, b in rates)


def bootstrap_ratio_ci(rates: Sequence[tuple[float, float]], statistic: str, *, resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float]:
    """95 % CI of :func:`ratio_statistic`: the percentile bootstrap over rounds, each resampled round
    keeping its A and B together (paired). For ``median`` this is :func:`bootstrap_median_ci` of the
    per-round ratios. NaNs for fewer than two rounds."""
    if statistic != "min":
        return bootstrap_median_ci([a / b for a, b in rates], resamples=resamples, seed=seed)
    data = np.asarray(rates, dtype=float)
    if len(data) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    picks = data[rng.integers(len(data), size=(resamples, len(data)))]  # resamples x rounds x 2
    values = picks[:, :, 0].max(axis=1) / picks[:, :, 1].max(axis=1)
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def tukey_outliers(values: list[float]) -> int:
    """How many values lie outside [Q1 - 1.5 IQR, Q3 + 1.5 IQR] (pytest-benchmark's IQR outliers)."""
    data = np.asarray(values, dtype=float)
    if data.size < 4:
        return 0
    q1, q3 = np.percentile(data, [25, 75])
    fence = 1.5 * (q3 - q1)
    return int(((data < q1 - fence) | (data > q3 + fence)).sum())


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # not available on this platform
        return float("nan")


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU jiffies of the whole machine from /proc/stat, None elsewhere."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = fields + [0] * (8 - len(fields))
    busy = user + nice + system + irq + softirq + steal  # steal: the hypervisor ran someone else
    return busy, busy + idle + iowait


@contextmanager
def contention() -> Iterator[dict[str, float]]:
    """Measure, over the ``with`` block, the load average at start and end and the share of the
    machine's CPU time used by *other* processes (``other_cpu``; NaN where /proc/stat is missing)."""
    stats = {"load_start": _load(), "load_end": float("nan"), "other_cpu": float("nan"), "elapsed_s": float("nan")}
    start_jiffies, start_cpu, start_wall = _cpu_jiffies(), time.process_time(), time.perf_counter()
    try:
        yield stats
    finally:
        stats["load_end"] = _load()
        stats["elapsed_s"] = time.perf_counter() - start_wall
        end_jiffies = _cpu_jiffies()
        if start_jiffies and end_jiffies and end_jiffies[1] > start_jiffies[1]:
            hertz = os.sysconf("SC_CLK_TCK")
            busy = (end_jiffies[0] - start_jiffies[0]) / hertz
            capacity = (end_jiffies[1] - start_jiffies[1]) / hertz
            own = time.process_time() - start_cpu
            stats["other_cpu"] = min(1.0, max(0.0, (busy - own) / capacity))


def is_busy(stats: dict[str, float]) -> bool:
    """Other processes took more than BUSY_SHARE of the CPU; without /proc/stat, load above the core count."""
    if stats["other_cpu"] == stats["other_cpu"]:
        return stats["other_cpu"] > BUSY_SHARE
    load = max(stats["load_start"], stats["load_end"])
    return load == load and load > (os.cpu_count() or 1)


def measure_pair(model_a: nn.Module, model_b: nn.Module, config: ThroughputConfig, *, rounds: int = 8,
                 max_rounds: int = 32, tolerance: float = 0.05, time_cap_s: float | None = None,
                 timer: Callable[[], float] | None = None, names: tuple[str, str] = ("A", "B")) -> PairedRatio:
    """Throughput ratio A / B under ``config`` (batch, input size, device, dtype), measured as a pair.

    Each round times ``config.iters`` batches of each model, in alternating order (in
    ``config.interleave`` alternating blocks per side); ``config.warmup`` batches of each run first.
    The ratio is ``config.statistic`` over rounds (:func:`ratio_statistic`), timed with ``config.clock``
    unless ``timer`` is given. While the CI half-width exceeds ``tolerance`` x ratio, the rounds double,
    up to ``max_rounds`` and as long as the next doubling is expected to end within ``time_cap_s``
    seconds of the start (``None``: no cap). Neither caller's model is modified (both are copied by
    ``prepare``). Raises :class:`~replication.measure.throughput.ThroughputError` when a model cannot
    take the input, or, with ``out_of_memory=True``, when the batch does not fit in memory.
    """
    if rounds < 2 or max_rounds < rounds:
        raise ValueError(f"need 2 <= rounds <= max_rounds, got rounds={rounds}, max_rounds={max_rounds}")
    sync = synchronizer(config.device)
    clock = timer or clock_of(config)
    blocks: list[float] = []
    per_block = config.iters // config.interleave

    def timed(model: nn.Module) -> float:
        sync()
        start = clock()
        for _ in range(per_block):
            model(x)
        sync()
        seconds = clock() - start
        blocks.append(seconds)
        return seconds

    def timed_round(index: int) -> None:
        seconds = {0: 0.0, 1: 0.0}
        for block in range(config.interleave):  # A B, B A, A B, ... across rounds and blocks
            order = (0, 1) if (index + block) % 2 == 0 else (1, 0)
            for side in order:
                seconds[side] += timed((first, second)[side])
        rates_a.append(config.batch_size * config.iters / seconds[0])
        rates_b.append(config.batch_size * config.iters / seconds[1])

    rates_a: list[float] = []
    rates_b: list[float] = []
    capped = False
    with contention() as stats:
        try:
            first, x = prepare(model_a, config, names[0])
            second, _ = prepare(model_b, config, names[1])
            with torch.inference_mode(), autocast(config):
                for model, name in zip((first, second), names, strict=True):
                    check_input(model, x, name)  # a shape the model cannot take: ThroughputError, as for one model
                    for _ in range(config.warmup):
                        model(x)
                # the cap is wall time whatever the clock: a thread clock stands still while others run
                wall = timer or time.perf_counter
                started = wall() if time_cap_s is not None else 0.0
                target = rounds
                while True:
                    while len(rates_a) < target:
                        timed_round(len(rates_a))
                    pairs = list(zip(rates_a, rates_b, strict=True))
                    ratios = [a / b for a, b in pairs]
                    ratio = ratio_statistic(pairs, config.statistic)
                    low, high = bootstrap_ratio_ci(pairs, config.statistic)
                    wide = not (high - low) / 2 <= tolerance * ratio  # a NaN CI counts as wide
                    if not wide or target >= max_rounds:
                        break
                    following = min(2 * target, max_rounds)
                    # stop before a doubling that would end past the cap, at the rounds' pace so far
                    if time_cap_s is not None and (wall() - started) * following / target > time_cap_s:
                        capped = True
                        break
                    target = following
        except (RuntimeError, MemoryError) as error:
            if isinstance(error, ThroughputError) or not is_out_of_memory(error):
                raise
            if config.device.startswith("cuda"):
                torch.cuda.empty_cache()
            raise out_of_memory_error(f"{names[0]} / {names[1]}", config) from None
    reasons = []
    if wide:
        reasons.append(f"CI wider than +-{100 * tolerance:.0f} % after {len(ratios)} rounds"
                       + (f" (time cap {time_cap_s:g} s)" if capped else ""))
    if min(blocks) < MIN_BLOCK_SECONDS:
        reasons.append(f"timed blocks as short as {1e3 * min(blocks):.2g} ms (raise iters)")
    return PairedRatio(ratio=ratio, ci_low=low, ci_high=high, rounds=len(ratios),
                       images_per_sec_a=summarise_rates(rates_a, config.statistic),
                       images_per_sec_b=summarise_rates(rates_b, config.statistic),
                       unstable=bool(reasons), load_start=stats["load_start"], load_end=stats["load_end"],
                       busy=is_busy(stats), other_cpu=stats["other_cpu"], outliers=tukey_outliers(ratios),
                       elapsed_s=stats["elapsed_s"], capped=capped, unstable_reason="; ".join(reasons),
                       round_ratios=tuple(ratios), round_rates=tuple(pairs), clock=config.clock,
                       statistic=config.statistic)


def summarise_rates(rates: Sequence[float], statistic: str) -> float:
    """Images/s over rounds: the median, or the fastest round (``min`` of the times)."""
    return max(rates) if statistic == "min" else statistics.median(rates)


def bootstrap_pooled_median_ci(groups: Sequence[Sequence[float]], *, resamples: int = 2000,
                               seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95 % CI of the pooled median of ``groups`` (one group per worker process):
    resample the groups, then the values within each, so the interval covers between-group noise.
    NaNs for fewer than two groups."""
    if len(groups) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(group, dtype=float) for group in groups]
    medians = np.empty(resamples)
    for index in range(resamples):
        chosen = rng.integers(len(arrays), size=len(arrays))
        medians[index] = np.median(np.concatenate([rng.choice(arrays[c], size=arrays[c].size) for c in chosen]))
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(low), float(high)


def _pair_in_this_process(build_a: Callable[[], nn.Module], build_b: Callable[[], nn.Module],
                          config: ThroughputConfig, rounds: int, names: tuple[str, str]) -> PairedRatio:
    return measure_pair(build_a(), build_b(), config, rounds=rounds, max_rounds=rounds, names=names)


def measure_pair_in_workers(build_a: Callable[[], nn.Module], build_b: Callable[[], nn.Module],
                            config: ThroughputConfig, *, workers: int = 5, rounds: int = 8,
                            tolerance: float = 0.05, names: tuple[str, str] = ("A", "B")) -> PairedRatio:
    """:func:`measure_pair` in ``workers`` fresh processes, one after the other (pyperf's worker processes).

    ``build_a`` / ``build_b`` build the two models in each worker; they must be picklable (module-level
    functions or ``functools.partial`` of them). Each worker times ``rounds`` interleaved rounds. The
    ratio is the median of all workers' per-round ratios; its 95 % CI comes from
    :func:`bootstrap_pooled_median_ci` over workers. Wider than ``tolerance``: ``unstable``. Load and
    contention span the whole run; ``busy`` if any worker was busy. The threads are the parent's
    unless ``config.threads`` says otherwise.
    """
    if workers < 2:
        raise ValueError(f"measure_pair_in_workers needs workers >= 2, got {workers} (use measure_pair for one)")
    if config.threads is None:
        config = dataclasses.replace(config, threads=torch.get_num_threads())
    results: list[PairedRatio] = []
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no state shared with this one
    load_start, started = _load(), time.perf_counter()
    for _ in range(workers):
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            results.append(pool.submit(_pair_in_this_process, build_a, build_b, config, rounds, names).result())
    groups = [result.round_ratios for result in results]
    ratios = [value for group in groups for value in group]
    rates = [pair for result in results for pair in result.round_rates]
    if config.statistic == "min":
        ratio = ratio_statistic(rates, "min")
        low, high = bootstrap_pooled_ratio_ci([result.round_rates for result in results], "min")
    else:
        ratio = statistics.median(ratios)
        low, high = bootstrap_pooled_median_ci(groups)
    # a worker's own wide CI is superseded by the pooled one; its other reasons (short blocks) stand
    reasons = [reason for r in results for reason in r.unstable_reason.split("; ")
               if reason and not reason.startswith("CI wider")]
    if not (high - low) / 2 <= tolerance * ratio:
        reasons.insert(0, f"CI wider than +-{100 * tolerance:.0f} % over {workers} workers")
    return PairedRatio(
        ratio=ratio, ci_low=low, ci_high=high, rounds=len(ratios),
        images_per_sec_a=summarise_rates([r.images_per_sec_a for r in results], config.statistic),
        images_per_sec_b=summarise_rates([r.images_per_sec_b for r in results], config.statistic),
        unstable=bool(reasons), load_start=load_start, load_end=_load(),
        # each worker measured the others' CPU share while it timed; this process only waited
        busy=any(r.busy for r in results), other_cpu=float(np.mean([r.other_cpu for r in results])),
        outliers=tukey_outliers(ratios), elapsed_s=time.perf_counter() - started,
        unstable_reason="; ".join(dict.fromkeys(reasons)), workers=workers, round_ratios=tuple(ratios),
        round_rates=tuple(rates), clock=config.clock, statistic=config.statistic)


def bootstrap_pooled_ratio_ci(groups: Sequence[Sequence[tuple[float, float]]], statistic: str, *,
                              resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """:func:`bootstrap_pooled_median_ci` for any :func:`ratio_statistic`: resample the workers, then
    the rounds within each (each round's A and B together). NaNs for fewer than two groups."""
    if len(groups) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(group, dtype=float) for group in groups]
    values = np.empty(resamples)
    for index in range(resamples):
        chosen = rng.integers(len(arrays), size=len(arrays))
        picked = np.concatenate([arrays[c][rng.integers(len(arrays[c]), size=len(arrays[c]))] for c in chosen])
        values[index] = ratio_statistic([(float(a), float(b)) for a, b in picked], statistic)
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)
