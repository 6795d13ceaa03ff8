"""Clocks and statistics for a busy machine (ThroughputConfig.clock / statistic / interleave): the thread
clock ignores time another process holds the core, the minimum ignores one-sided slow rounds, finer
interleaving splits a round into alternating blocks, and every row says which clock it used."""

import time

import numpy as np
import pytest
from torch import nn

from replication.measure.interleaved import measure_interleaved, round_order
from replication.measure.paired import bootstrap_ratio_ci, measure_pair, ratio_statistic
from replication.measure.throughput import ThroughputConfig, clock_of, environment, measure_throughput


class Clock:
    """A fake clock that only the fake models advance."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Sleeper(nn.Module):
    """Each forward costs ``seconds`` x ``slowdown()`` on the fake clock (reached through a closure:
    measuring deep-copies the model, and must not copy the clock)."""

    def __init__(self, clock: Clock, seconds: float, slowdown) -> None:
        super().__init__()

        def advance() -> None:
            clock.now += seconds * slowdown()

        self.advance = advance

    def forward(self, x):
        self.advance()
        return x

CONFIG = ThroughputConfig(batch_size=2, input_size=(1, 2, 2), warmup=1, iters=4, device="cpu")


def test_clock_settings_are_checked_and_a_thread_clock_means_one_thread():
    config = ThroughputConfig(device="cpu", clock="thread")
    assert config.threads == 1 and clock_of(config) is time.thread_time
    assert clock_of(ThroughputConfig(device="cpu")) is time.perf_counter
    with pytest.raises(ValueError, match="use clock 'wall'"):
        ThroughputConfig(device="cuda", clock="thread")
    with pytest.raises(ValueError, match="threads=1"):
        ThroughputConfig(device="cpu", clock="thread", threads=2)
    with pytest.raises(ValueError, match="clock must be one of"):
        ThroughputConfig(device="cpu", clock="cycles")
    with pytest.raises(ValueError, match="divide iters"):
        ThroughputConfig(device="cpu", iters=4, interleave=3)
    row = environment(ThroughputConfig(device="cpu", clock="thread", statistic="min", pin_allocator=False))
    assert row["clock"] == "thread" and row["statistic"] == "min"


def test_the_thread_clock_does_not_count_time_spent_waiting():
    class Waits(nn.Module):
        def forward(self, x):
            time.sleep(0.02)  # off the CPU, as when another process holds the core
            return x

    config = ThroughputConfig(batch_size=1, input_size=(1, 2, 2), warmup=0, iters=3, repeats=1, device="cpu",
                              pin_allocator=False)
    wall = measure_throughput(Waits(), config)
    thread = measure_throughput(Waits(), ThroughputConfig(**{**config.__dict__, "clock": "thread", "threads": None}))
    assert wall.ms_per_batch > 15 and thread.ms_per_batch < 5


def test_the_minimum_ignores_rounds_slowed_on_one_side():
    rng = np.random.default_rng(1)
    clock = Clock()
    # every third forward of either side is hit by a 3x slow spell of its own (not shared by the pair)
    model_a = Sleeper(clock, 1.0, lambda: 3.0 if rng.random() < 0.3 else 1.0)
    model_b = Sleeper(clock, 1.25, lambda: 3.0 if rng.random() < 0.3 else 1.0)
    config = ThroughputConfig(**{**CONFIG.__dict__, "iters": 1, "statistic": "min"})
    pair = measure_pair(model_a, model_b, config, rounds=16, max_rounds=16, timer=clock)
    assert pair.ratio == pytest.approx(1.25, rel=1e-9) and pair.statistic == "min"
    assert pair.as_row()["statistic"] == "min" and pair.as_row()["clock"] == "wall"


def test_ratio_statistics_and_their_paired_bootstrap():
    rates = [(2.0, 1.0), (4.0, 2.0), (3.0, 1.0), (1.0, 1.0)]
    assert ratio_statistic(rates, "median") == pytest.approx(2.0)
    assert ratio_statistic(rates, "min") == pytest.approx(4.0 / 2.0)
    low, high = bootstrap_ratio_ci(rates, "min")
    assert low <= 2.0 <= high
    assert bootstrap_ratio_ci(rates[:1], "min") != bootstrap_ratio_ci(rates[:1], "min")  # NaNs: one round


def test_finer_interleaving_alternates_blocks_within_a_round():
    clock = Clock()
    order = []

    class Named(Sleeper):
        def __init__(self, name, seconds):
            super().__init__(clock, seconds, lambda: 1.0)
            self.name = name

        def forward(self, x):
            order.append(self.name)
            return super().forward(x)

    config = ThroughputConfig(**{**CONFIG.__dict__, "warmup": 0, "iters": 4, "interleave": 2})
    pair = measure_pair(Named("a", 1.0), Named("b", 2.0), config, rounds=2, max_rounds=2, timer=clock)
    assert pair.ratio == pytest.approx(2.0)
    timed = "".join(order[2:])  # after one check pass of each
    assert timed == "aabbbbaa" + "bbaaaabb"


def test_interleaved_groups_pair_every_ratio_by_round_and_stop_at_the_deadline():
    clock = Clock()
    models = {"a": Sleeper(clock, 1.0, lambda: 1.0), "b": Sleeper(clock, 2.0, lambda: 1.0),
              "c": Sleeper(clock, 4.0, lambda: 1.0)}
    result = measure_interleaved(models, CONFIG, rounds=5, timer=clock)
    assert result.rounds == 5 and result.ratio("a", "c")[0] == pytest.approx(4.0)
    assert sorted(round_order(3, 1)) == [0, 1, 2] and round_order(3, 0) != round_order(3, 1)
    stopped = measure_interleaved(models, CONFIG, rounds=50, min_rounds=2, deadline=time.perf_counter() - 1,
                                  timer=clock)
    assert stopped.rounds == 2 and stopped.stopped_early
