"""Several models timed in one interleaved run, so that every ratio between any two of them is paired.

:func:`~replication.measure.paired.measure_pair` times two models in alternating blocks. A paper table
compares many: a group of rows, each in its training and its deploy form. Timing each pair on its own
would time each model many times over; here each round times every model once (``config.iters``
batches, synchronised on CUDA), in an order that rotates and reverses from round to round, so a slow
spell touches every model alike, and any ratio A / B is taken over the same rounds (per-round ratios,
median or ``min`` statistic, bootstrap CI: :func:`~replication.measure.paired.ratio_statistic`).

A ``deadline`` (a ``time.perf_counter()`` value) ends the rounds early, after at least ``min_rounds``:
a time-boxed run (``scripts/gpu-check.sh``) keeps what it measured rather than overrun.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from .paired import bootstrap_ratio_ci, ratio_statistic
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


@dataclass
class Interleaved:
    """Per-round seconds of ``config.iters`` batches, for each model, in the order of ``names``."""

    names: tuple[str, ...]
    batch_size: int
    iters: int
    seconds: dict[str, list[float]] = field(default_factory=dict)
    stopped_early: bool = False   # the deadline came before the rounds asked for

    @property
    def rounds(self) -> int:
        return min((len(values) for values in self.seconds.values()), default=0)

    def rates(self, name: str) -> list[float]:
        return [self.batch_size * self.iters / seconds for seconds in self.seconds[name]]

    def images_per_sec(self, name: str, statistic: str = "median") -> float:
        rates = self.rates(name)
        return max(rates) if statistic == "min" else statistics.median(rates)

    def ratio(self, a: str, b: str, statistic: str = "median") -> tuple[float, float, float]:
        """(ratio, CI low, CI high) of images/s of ``a`` over ``b``, paired by round."""
        pairs = list(zip(self.rates(a), self.rates(b), strict=True))
        low, high = bootstrap_ratio_ci(pairs, statistic)
        return ratio_statistic(pairs, statistic), low, high


def round_order(count: int, index: int) -> list[int]:
    """The order of ``count`` models in round ``index``: rotated by the round, reversed every other round
    (0 1 2, 2 1 0, 1 2 0, 0 2 1, ...), so no model always runs first or right after the same one."""
    order = [(position + index // 2) % count for position in range(count)]
    return order[::-1] if index % 2 else order


def measure_interleaved(models: Mapping[str, nn.Module], config: ThroughputConfig, *, rounds: int,
                        min_rounds: int = 2, deadline: float | None = None,
                        timer: Callable[[], float] | None = None) -> Interleaved:
    """Time every model of ``models`` (name -> module) in ``rounds`` interleaved rounds under ``config``.

    Every model is copied to the device (``prepare``), takes one forward pass (an input it cannot take
    is a :class:`ThroughputError`), runs ``config.warmup`` untimed batches, then each round times
    ``config.iters`` batches of each. Past ``deadline`` (perf_counter seconds) the rounds stop, once
    ``min_rounds`` are done. Out of memory: :class:`ThroughputError` with ``out_of_memory=True``.
    """
    if rounds < 1 or min_rounds < 1:
        raise ValueError(f"need rounds >= 1 and min_rounds >= 1, got {rounds}, {min_rounds}")
    names = tuple(models)
    sync = synchronizer(config.device)
    clock = timer or clock_of(config)
    result = Interleaved(names, config.batch_size, config.iters, {name: [] for name in names})
    try:
        prepared: dict[str, nn.Module] = {}
        x = None
        for name in names:
            prepared[name], batch = prepare(models[name], config, name)
            x = batch if x is None else x
        assert x is not None
        with torch.inference_mode(), autocast(config):
            for name in names:
                check_input(prepared[name], x, name)
                for _ in range(config.warmup):
                    prepared[name](x)
            for index in range(rounds):
                if deadline is not None and index >= min_rounds and time.perf_counter() > deadline:
                    result.stopped_early = True
                    break
                for position in round_order(len(names), index):
                    name = names[position]
                    sync()
                    start = clock()
                    for _ in range(config.iters):
                        prepared[name](x)
                    sync()
                    result.seconds[name].append(clock() - start)
    except (RuntimeError, MemoryError) as error:
        if isinstance(error, ThroughputError) or not is_out_of_memory(error):
            raise
        if config.device.startswith("cuda"):
            torch.cuda.empty_cache()
        raise out_of_memory_error(" / ".join(names), config) from None
    finally:
        if config.device.startswith("cuda"):
            prepared = {}
            torch.cuda.empty_cache()
    return result
