"""Seed statistics shared by the summaries, the figures and the claim verdicts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as _scipy_stats

# A run did not train when its final test top-1 is within DID_NOT_TRAIN_MARGIN points of chance, or its
# final test loss is at or above ln(classes) - DID_NOT_TRAIN_LOSS_MARGIN (the loss of a uniform guess:
# a network that learned nothing about the test set). Such a run is an outcome, never a number in a mean.
DID_NOT_TRAIN_MARGIN = 3.0
DID_NOT_TRAIN_LOSS_MARGIN = 0.05


@dataclass(frozen=True)
class SeedSummary:
    mean: float
    std: float        # sample standard deviation (ddof 1); NaN for one seed
    ci_low: float     # Student-t 95 % CI of the mean; NaN for one seed
    ci_high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


def summarize_seeds(values: Sequence[float]) -> SeedSummary:
    """Mean, std and the t-based 95 % CI of the mean over seeds (NaN values are dropped)."""
    data = [float(v) for v in values if not math.isnan(float(v))]
    n = len(data)
    if n == 0:
        nan = float("nan")
        return SeedSummary(nan, nan, nan, nan, 0)
    mean = sum(data) / n
    if n == 1:
        return SeedSummary(mean, float("nan"), float("nan"), float("nan"), 1)
    std = math.sqrt(sum((v - mean) ** 2 for v in data) / (n - 1))
    half = float(_scipy_stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return SeedSummary(mean, std, mean - half, mean + half, n)


def difference_ci(a: Sequence[float], b: Sequence[float]) -> SeedSummary:
    """Mean of ``a`` minus mean of ``b`` with a Welch 95 % CI (independent seeds on each side)."""
    sa, sb = summarize_seeds(a), summarize_seeds(b)
    diff = sa.mean - sb.mean
    n = min(sa.n, sb.n)
    if sa.n < 2 or sb.n < 2:
        return SeedSummary(diff, float("nan"), float("nan"), float("nan"), n)
    va, vb = sa.std**2 / sa.n, sb.std**2 / sb.n
    se = math.sqrt(va + vb)
    if se == 0:
        return SeedSummary(diff, 0.0, diff, diff, n)
    dof = (va + vb) ** 2 / (va**2 / (sa.n - 1) + vb**2 / (sb.n - 1))
    half = float(_scipy_stats.t.ppf(0.975, dof)) * se
    return SeedSummary(diff, se, diff - half, diff + half, n)


def chance_top1(num_classes: int) -> float:
    return 100.0 / num_classes


def did_not_train(top1: float, num_classes: int, test_loss: float | None = None) -> bool:
    """True when a run's final test top-1 (%) is within ``DID_NOT_TRAIN_MARGIN`` points of chance, or its
    final test loss (nats) is at or above ``ln(num_classes) - DID_NOT_TRAIN_LOSS_MARGIN``."""
    if top1 < chance_top1(num_classes) + DID_NOT_TRAIN_MARGIN:
        return True
    return test_loss is not None and not math.isnan(test_loss) and (
        test_loss >= math.log(num_classes) - DID_NOT_TRAIN_LOSS_MARGIN)


def fisher_exact_greater(failed_a: int, n_a: int, failed_b: int, n_b: int) -> float:
    """One-sided Fisher exact p-value that runs of A fail more often than runs of B (``failed_a`` of
    ``n_a`` against ``failed_b`` of ``n_b``)."""
    table = [[failed_a, n_a - failed_a], [failed_b, n_b - failed_b]]
    return float(_scipy_stats.fisher_exact(table, alternative="greater").pvalue)
