"""Paired, interleaved ratios on synthetic timings: a known ratio is recovered through slow spells that
move each side's images/s five-fold, re-measuring stops at the time cap, and contention is flagged."""

import math

import numpy as np
import pytest
from torch import nn

from replication.measure import paired
from replication.measure.paired import format_ratio, is_busy, measure_pair, tukey_outliers
from replication.measure.throughput import ThroughputConfig, ThroughputError, measure_throughput

CONFIG = ThroughputConfig(batch_size=2, input_size=(1, 2, 2), warmup=1, iters=1, device="cpu")


class Clock:
    """A fake clock that only the fake models advance."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Sleeper(nn.Module):
    """Each forward costs ``seconds`` x the machine's current slowdown on the fake clock. (The clock is
    reached through a plain function: measuring deep-copies the model, and must not copy the clock.)"""

    def __init__(self, clock: Clock, seconds: float, slowdown) -> None:
        super().__init__()

        def advance() -> None:
            clock.now += seconds * slowdown()

        self.advance = advance

    def forward(self, x):
        self.advance()
        return x


def test_a_known_ratio_survives_slow_spells():
    rng = np.random.default_rng(0)
    clock = Clock()
    # Slow spells: the machine's speed changes every 50 fake seconds (5-20 rounds), by up to 5x;
    # each forward also has 1 % jitter of its own.
    spells = rng.uniform(1.0, 5.0, size=10_000)

    def slowdown():
        return spells[int(clock.now / 50.0)] * rng.normal(1.0, 0.01)

    model_a, model_b = Sleeper(clock, 1.0, slowdown), Sleeper(clock, 1.25, slowdown)  # A is 1.25x faster
    pair = measure_pair(model_a, model_b, CONFIG, rounds=16, max_rounds=64, timer=clock)
    assert pair.ratio == pytest.approx(1.25, rel=0.02)
    assert pair.ci_low <= 1.25 <= pair.ci_high and not pair.unstable


def test_a_busy_spell_moves_an_unpaired_ratio_five_fold_and_a_paired_one_not_at_all():
    clock = Clock()
    # The machine becomes 5x slower half-way (another job starts), as in the two embedded runs whose
    # pruned ResNet 18 timed at 2597 and at 113 images/s.
    busy_from = 40.0

    def slowdown():
        return 5.0 if clock.now >= busy_from else 1.0

    model_a, model_b = Sleeper(clock, 1.0, slowdown), Sleeper(clock, 1.25, slowdown)
    config = ThroughputConfig(batch_size=2, input_size=(1, 2, 2), warmup=1, iters=1, repeats=16, device="cpu")
    alone_a = measure_throughput(model_a, config, timer=clock)       # before the busy spell
    alone_b = measure_throughput(model_b, config, timer=clock)       # during it
    assert alone_a.images_per_sec / alone_b.images_per_sec == pytest.approx(1.25 * 5, rel=0.01)
    clock.now = busy_from - 20.0                                      # the spell starts mid-pair
    pair = measure_pair(model_a, model_b, CONFIG, rounds=16, max_rounds=16, timer=clock)
    assert pair.ratio == pytest.approx(1.25, rel=1e-9)
    assert pair.ci_low <= 1.25 <= pair.ci_high


def test_re_measuring_stops_at_the_time_cap_and_the_ratio_is_marked():
    clock = Clock()
    pattern = iter(np.tile([1.0, 3.0, 1.0, 1.0], 10_000))  # per-round ratios jump between 3 and 1/3

    def slowdown():
        return next(pattern)

    model = Sleeper(clock, 1.0, slowdown)
    capped = measure_pair(model, model, CONFIG, rounds=4, max_rounds=64, time_cap_s=20.0, timer=clock)
    assert capped.capped and capped.unstable and capped.rounds < 64
    assert "time cap" in capped.unstable_reason and "CI wider" in capped.unstable_reason
    uncapped = measure_pair(model, model, CONFIG, rounds=4, max_rounds=16, timer=clock)
    assert uncapped.rounds == 16 and uncapped.unstable and not uncapped.capped
    assert "unstable" in format_ratio(uncapped.ratio, uncapped.ci_low, uncapped.ci_high, uncapped.unstable)


def test_blocks_shorter_than_a_millisecond_are_flagged():
    clock = Clock()
    model = Sleeper(clock, 1e-5, lambda: 1.0)
    pair = measure_pair(model, model, CONFIG, rounds=4, max_rounds=4, timer=clock)
    assert pair.unstable and "short" in pair.unstable_reason and pair.ratio == pytest.approx(1.0)


def test_contention_counts_other_processes_cpu_time(monkeypatch):
    jiffies = iter([(1000, 4000), (1000 + 150, 4000 + 200)])  # 150 of 200 jiffies busy during the block
    cpu = iter([10.0, 10.0 + 50 / 100])                       # of which this process used 50 (at 100 Hz)
    monkeypatch.setattr(paired, "_cpu_jiffies", lambda: next(jiffies))
    monkeypatch.setattr(paired.time, "process_time", lambda: next(cpu))
    monkeypatch.setattr(paired.os, "sysconf", lambda name: 100)
    with paired.contention() as stats:
        pass
    assert stats["other_cpu"] == pytest.approx(100 / 200) and is_busy(stats)
    assert not is_busy({"other_cpu": 0.05, "load_start": 99.0, "load_end": 99.0})
    assert is_busy({"other_cpu": math.nan, "load_start": 1e6, "load_end": 0.0})  # fallback: load average


def test_real_pairs_record_load_and_contention():
    conv = nn.Conv2d(1, 2, 1)
    pair = measure_pair(conv, conv, ThroughputConfig(batch_size=2, input_size=(1, 4, 4), warmup=0, iters=2,
                                                     device="cpu"), rounds=2, max_rounds=2)
    row = pair.as_row(pair_id="p1")
    for key in ("ratio", "ratio_ci_low", "ratio_ci_high", "rounds", "pair_id", "load_start", "load_end", "busy",
                "other_cpu", "outliers", "unstable_reason"):
        assert key in row
    assert row["pair_id"] == "p1" and row["rounds"] == 2


def test_out_of_memory_in_a_pair_is_reported_as_such():
    class Hungry(nn.Module):
        def forward(self, x):
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                               "memory: you tried to allocate 1125899906842624 bytes. Error code 12")

    with pytest.raises(ThroughputError, match="does not fit") as caught:
        measure_pair(Hungry(), nn.Identity(), CONFIG, names=("hungry", "identity"))
    assert caught.value.out_of_memory


def test_outliers_and_formatting():
    assert tukey_outliers([1.0, 1.01, 0.99, 1.0, 1.02, 3.0]) == 1 and tukey_outliers([1.0, 2.0]) == 0
    assert format_ratio(1.234, 1.21, 1.25) == "1.23 [1.21, 1.25]"
    assert format_ratio(1.234, 1.0, 1.5, unstable=True) == "1.23 [1.00, 1.50] unstable"
    assert format_ratio(float("nan"), 1.0, 1.5) == "n/a" and format_ratio(1.0, math.nan, math.nan) == "1.00 [no CI]"


def test_pooled_bootstrap_over_workers_covers_between_process_offsets():
    """Five 'processes' whose ratios sit at a fixed offset each (per-process noise), tight within: the
    flat bootstrap's CI is too narrow to cover the true ratio 1.0 spread; the pooled one spans the offsets."""
    rng = np.random.default_rng(1)
    offsets = [0.94, 0.97, 1.0, 1.03, 1.06]
    groups = [list(offset + rng.normal(0, 0.002, 8)) for offset in offsets]
    flat_low, flat_high = paired.bootstrap_median_ci([v for g in groups for v in g])
    low, high = paired.bootstrap_pooled_median_ci(groups)
    assert low <= 1.0 <= high
    assert (high - low) > 2 * (flat_high - flat_low)
    assert math.isnan(paired.bootstrap_pooled_median_ci([[1.0, 1.1]])[0])  # one group: no CI


def test_pairs_in_worker_processes_pool_every_round_and_leave_this_process_alone():
    import functools

    import torch

    threads = torch.get_num_threads()
    config = ThroughputConfig(batch_size=2, input_size=(3, 8, 8), warmup=1, iters=2, device="cpu")
    build_a = functools.partial(nn.Conv2d, 3, 4, 3)  # picklable builders, run in each fresh process
    build_b = functools.partial(nn.Conv2d, 3, 8, 3)
    pair = paired.measure_pair_in_workers(build_a, build_b, config, workers=2, rounds=3, names=("small", "wide"))
    assert pair.workers == 2 and pair.rounds == len(pair.round_ratios) == 6
    assert pair.ci_low <= pair.ratio <= pair.ci_high and pair.as_row()["workers"] == 2
    assert 0.0 <= pair.other_cpu <= 1.0 and torch.get_num_threads() == threads
    with pytest.raises(ValueError, match="workers >= 2"):
        paired.measure_pair_in_workers(build_a, build_b, config, workers=1)


def test_timing_pins_glibc_mallocs_thresholds_and_rows_say_so(monkeypatch):
    import platform

    from replication.measure import allocator
    from replication.measure.throughput import environment

    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(allocator, "_pinned", False)
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    assert allocator.cpu_allocator() == "glibc dynamic"
    assert environment(ThroughputConfig(device="cpu", pin_allocator=False))["cpu_allocator"] == "glibc dynamic"
    measure_pair(nn.Identity(), nn.Identity(), CONFIG, rounds=2, max_rounds=2)
    assert allocator.cpu_allocator() == "glibc pinned" and allocator.pin_cpu_allocator()
    assert environment(CONFIG)["cpu_allocator"] == "glibc pinned"
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1048576")
    assert allocator.cpu_allocator() == "glibc (environment)"
