"""Seed statistics and paired speed ratios."""

import itertools
import math

import pytest
import torch
from torch import nn

from replication.measure.paired import bootstrap_median_ci, measure_pair
from replication.measure.throughput import ThroughputConfig
from replication.stats import did_not_train, difference_ci, summarize_seeds


def test_summarize_seeds_matches_the_t_interval():
    summary = summarize_seeds([1.0, 2.0, 3.0])
    assert summary.mean == 2.0 and summary.std == 1.0 and summary.n == 3
    assert summary.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)  # t(0.975, 2) = 4.3027
    one = summarize_seeds([5.0])
    assert one.mean == 5.0 and math.isnan(one.ci_low)


def test_difference_ci_is_welch():
    diff = difference_ci([10.0, 11.0, 12.0], [1.0, 2.0, 3.0])
    assert diff.mean == 9.0 and diff.ci_low > 0
    assert math.isnan(difference_ci([1.0], [2.0, 3.0]).ci_low)


def test_did_not_train_near_chance_top1_or_near_uniform_loss():
    assert did_not_train(12.9, 10) and not did_not_train(13.1, 10) and did_not_train(3.5, 100)
    # RepVGG 133 seed 1 of an earlier evidence run: 15.6 % top-1 but a test loss above ln 10 = 2.303
    assert did_not_train(15.6, 10, test_loss=2.306)
    assert did_not_train(40.0, 10, test_loss=math.log(10) - 0.04)
    assert not did_not_train(40.0, 10, test_loss=math.log(10) - 0.06)
    assert not did_not_train(80.0, 10, test_loss=float("nan"))


def test_fisher_exact_counts_failures():
    from replication.stats import fisher_exact_greater
    assert fisher_exact_greater(3, 3, 0, 3) == pytest.approx(0.05)  # 1 / C(6, 3): the smallest p with 3 seeds a side
    assert fisher_exact_greater(0, 3, 0, 3) == 1.0


def test_bootstrap_ci_brackets_the_median():
    low, high = bootstrap_median_ci([1.0, 1.1, 0.9, 1.05, 0.95, 1.0])
    assert low <= 1.0 <= high


def test_paired_ratio_uses_alternating_rounds_and_flags_an_unstable_ratio():
    ticks = itertools.count()
    # A deterministic clock: every call advances by 1, so every block takes the same time.
    config = ThroughputConfig(batch_size=2, input_size=(3, 8, 8), warmup=0, iters=1, device="cpu")
    model = nn.Conv2d(3, 4, 3)
    pair = measure_pair(model, model, config, rounds=4, max_rounds=8, timer=lambda: float(next(ticks)))
    assert pair.ratio == 1.0 and pair.rounds == 4 and not pair.unstable

    durations = itertools.cycle([1.0, 3.0, 1.0, 1.0])  # a ratio that jumps between 3 and 1/3

    def noisy():
        noisy.now += next(durations) / 2
        return noisy.now
    noisy.now = 0.0
    wide = measure_pair(model, model, config, rounds=4, max_rounds=8, timer=noisy)
    assert wide.rounds == 8 and wide.unstable
    assert model.weight.requires_grad and model.training  # the caller's model is untouched
    with pytest.raises(ValueError, match="rounds"):
        measure_pair(model, model, config, rounds=1)
    assert torch.get_num_threads() >= 1


def test_paired_ratio_names_a_model_that_cannot_take_the_input():
    from replication.measure.throughput import ThroughputError

    config = ThroughputConfig(batch_size=2, input_size=(3, 8, 8), warmup=0, iters=1, device="cpu")
    with pytest.raises(ThroughputError, match="narrow.*cannot take input"):
        measure_pair(nn.Conv2d(3, 4, 3), nn.Conv2d(5, 4, 3), config, names=("wide", "narrow"))
