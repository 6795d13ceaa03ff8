"""The decision rules every verdict kind shares, stated once.

- A run that did not train (:func:`replication.stats.did_not_train`, decided from the run's own final
  top-1 and test loss) is an outcome, never a number in a mean: accuracy comparisons use trained seeds
  only, and need at least :data:`MIN_SEEDS` of them per side for a CI.
- A claim whose substance is that a network fails to train decides on how many seeds failed on each
  side, with a one-sided Fisher exact test at :data:`ALPHA`.
- A CI decides: beyond the threshold on the claim's side -> reproduced; beyond it on the other side ->
  not reproduced; straddling it -> inconclusive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from ..data.specs import DATASET_SPECS
from ..stats import did_not_train, fisher_exact_greater

EXACT, REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_RUN = (
    "exact", "reproduced", "not reproduced", "inconclusive", "not run in this profile")
VERDICTS = (EXACT, REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_RUN)

MIN_SEEDS = 3          # trained seeds per side before an accuracy CI decides anything
ALPHA = 0.05           # one-sided Fisher exact test on failed seeds (3 of 3 vs 0 of 3 gives p = 0.05)
_P_SLACK = 1e-9        # scipy's p for 3/3 vs 0/3 is 0.05 plus rounding


def decide(ci_low: float, ci_high: float, threshold: float = 0.0, *, n: int | None = None,
           higher_is_claim: bool = True, min_n: int = 2) -> str:
    """Reproduced when the CI lies beyond ``threshold`` on the claim's side, not reproduced when it lies
    beyond it on the other side, inconclusive otherwise (a NaN CI, or fewer than ``min_n`` values)."""
    if (n is not None and n < min_n) or math.isnan(ci_low) or math.isnan(ci_high):
        return INCONCLUSIVE
    above, below = ci_low > threshold, ci_high < threshold
    if not higher_is_claim:
        above, below = below, above
    return REPRODUCED if above else NOT_REPRODUCED if below else INCONCLUSIVE


def decide_inside(ci_low: float, ci_high: float, low: float, high: float) -> str:
    """Reproduced when the CI lies inside [low, high], not reproduced when it lies entirely outside."""
    if math.isnan(ci_low) or math.isnan(ci_high):
        return INCONCLUSIVE
    if low <= ci_low and ci_high <= high:
        return REPRODUCED
    if ci_high < low or ci_low > high:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def num_classes(dataset: str, rows: pd.DataFrame | None = None) -> int:
    if rows is not None and "num_classes" in rows and len(rows):
        return int(rows["num_classes"].iloc[0])
    return DATASET_SPECS[dataset].num_classes


def failed_mask(rows: pd.DataFrame, classes: int, metric: str = "top1") -> pd.Series:
    """Which rows did not train, from their own final top-1 and (where recorded) test loss."""
    losses = rows["test_loss"] if "test_loss" in rows else pd.Series(float("nan"), index=rows.index)
    return pd.Series([did_not_train(float(top1), classes, None if math.isnan(float(loss)) else float(loss))
                      for top1, loss in zip(rows["top1"], losses)], index=rows.index, dtype=bool)


@dataclass(frozen=True)
class FailureTest:
    failed_a: int
    n_a: int
    failed_b: int
    n_b: int
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value <= ALPHA + _P_SLACK

    @property
    def any_failed(self) -> bool:
        return self.failed_a + self.failed_b > 0

    @property
    def effect(self) -> float:
        """Share of A's seeds that failed minus B's."""
        return self.failed_a / self.n_a - self.failed_b / self.n_b

    def text(self, a: str, b: str) -> str:
        return (f"did not train: {a} {self.failed_a} of {self.n_a}, {b} {self.failed_b} of {self.n_b} seeds "
                f"(one-sided Fisher exact p = {self.p_value:.3g})")


def failure_test(failed_a: pd.Series, failed_b: pd.Series) -> FailureTest:
    """Does A fail more often than B? (Fisher exact, one-sided.)"""
    fa, fb = int(failed_a.sum()), int(failed_b.sum())
    return FailureTest(fa, len(failed_a), fb, len(failed_b), fisher_exact_greater(fa, len(failed_a), fb, len(failed_b)))


def name_seeds(rows: pd.DataFrame, mask: pd.Series, label: str) -> str:
    seeds = ", ".join(str(int(s)) for s in rows.loc[mask, "seed"])
    return f"{label} seed {seeds}" if seeds else ""


def join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def how_to_run(requires: str | None) -> str:
    """What would produce the evidence a profile lacks."""
    return {
        "imagenet": "needs ImageNet: config/paper.yaml with imagenet: true and data.roots.imagenet set",
        "cuda": "needs a GPU: bash scripts/gpu-check.sh on a CUDA machine (or a profile with throughput.device: cuda)",
        "cifar10": "needs CIFAR-10: config/paper.yaml (datasets: [cifar10, cifar100])",
        "cifar100": "needs CIFAR-100: config/paper.yaml (datasets: [cifar10, cifar100])",
    }.get(str(requires), f"needs {requires}")
