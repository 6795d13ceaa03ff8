"""Speed *ratios* that survive a noisy machine: two models timed as a pair, interleaved.

Timing model A now and model B a minute later measures whatever else the machine did in between. A
pair is measured in one process, with the same threads, input and dtype, both warmed up, then in
alternating blocks (A B, B A, A B, ...), so a slow spell hits both sides of a round alike. The ratio
is the median of the per-round ratios, with a bootstrap 95 % confidence interval. A ratio whose CI is
wider than ``tolerance`` (relative half-width) gets more rounds, up to ``max_rounds``; if it is still
wide it is flagged ``unstable`` and must not be reported as a clean number.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .throughput import ThroughputConfig, _autocast, _synchronizer, check_input, prepare


@dataclass
class PairedRatio:
    ratio: float                 # median over rounds of images/s(A) / images/s(B)
    ci_low: float                # bootstrap 95 % CI of that median
    ci_high: float
    rounds: int
    images_per_sec_a: float      # median over rounds
    images_per_sec_b: float
    unstable: bool               # CI half-width above the tolerance after max_rounds
    load_start: float            # 1-minute load average before and after the measurement
    load_end: float

    def as_row(self, prefix: str = "") -> dict[str, object]:
        return {f"{prefix}ratio": self.ratio, f"{prefix}ratio_ci_low": self.ci_low,
                f"{prefix}ratio_ci_high": self.ci_high, f"{prefix}rounds": self.rounds,
                f"{prefix}unstable": self.unstable, "load_start": self.load_start, "load_end": self.load_end}


def bootstrap_median_ci(values: list[float], *, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95 % CI of the median of ``values``."""
    data = np.asarray(values, dtype=float)
    if data.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(data, size=(resamples, data.size), replace=True), axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(low), float(high)


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # not available on this platform
        return float("nan")


def measure_pair(model_a: nn.Module, model_b: nn.Module, config: ThroughputConfig, *, rounds: int = 8,
                 max_rounds: int = 32, tolerance: float = 0.05,
                 timer: Callable[[], float] = time.perf_counter, names: tuple[str, str] = ("A", "B")) -> PairedRatio:
    """Throughput ratio A / B under ``config`` (batch, input size, device, dtype), measured as a pair.

    Each round times ``config.iters`` batches of each model, in alternating order; ``config.warmup``
    batches of each run first. Neither caller's model is modified (both are copied by ``prepare``).
    Raises :class:`~replication.measure.throughput.ThroughputError` when a model cannot take the input.
    """
    if rounds < 2 or max_rounds < rounds:
        raise ValueError(f"need 2 <= rounds <= max_rounds, got rounds={rounds}, max_rounds={max_rounds}")
    load_start = _load()
    first, x = prepare(model_a, config)
    second, _ = prepare(model_b, config)
    sync = _synchronizer(config.device)

    def timed(model: nn.Module) -> float:
        sync()
        start = timer()
        for _ in range(config.iters):
            model(x)
        sync()
        return config.batch_size * config.iters / (timer() - start)

    rates_a: list[float] = []
    rates_b: list[float] = []
    with torch.inference_mode(), _autocast(config):
        for model, name in zip((first, second), names):
            check_input(model, x, name)  # a shape the model cannot take: ThroughputError, as for one model
            for _ in range(config.warmup):
                model(x)
        target = rounds
        while True:
            while len(rates_a) < target:
                if len(rates_a) % 2 == 0:
                    rates_a.append(timed(first))
                    rates_b.append(timed(second))
                else:
                    rates_b.append(timed(second))
                    rates_a.append(timed(first))
            ratios = [a / b for a, b in zip(rates_a, rates_b)]
            ratio = statistics.median(ratios)
            low, high = bootstrap_median_ci(ratios)
            wide = (high - low) / 2 > tolerance * ratio
            if not wide or target >= max_rounds:
                break
            target = min(2 * target, max_rounds)
    return PairedRatio(ratio=ratio, ci_low=low, ci_high=high, rounds=len(ratios),
                       images_per_sec_a=statistics.median(rates_a), images_per_sec_b=statistics.median(rates_b),
                       unstable=wide, load_start=load_start, load_end=_load())
