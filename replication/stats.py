"""Seed statistics shared by the summaries, the figures and the claim verdicts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as _scipy_stats

# A run whose final test top-1 is within this many points of chance did not train.
DID_NOT_TRAIN_MARGIN = 2.0


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


def did_not_train(top1: float, num_classes: int) -> bool:
    """True when a final test top-1 (%) is within ``DID_NOT_TRAIN_MARGIN`` points of chance."""
    return top1 < chance_top1(num_classes) + DID_NOT_TRAIN_MARGIN
