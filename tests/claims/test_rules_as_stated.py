"""Each claim's rule, as claims.yaml states it in words, computed here independently of
replication.claims and compared with the verdict the code gives on the same fixture.

The numbers a rule names (thresholds, seeds per side, p level, bounds) are parsed from its text, so a
rule text and its code cannot drift apart silently.
"""

import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from replication.claims import Evidence, judge, load_claims, rules as code_rules
from replication.stats import DID_NOT_TRAIN_LOSS_MARGIN, DID_NOT_TRAIN_MARGIN

CLAIMS = {claim.id: claim for claim in load_claims()}
CONTEXT = {"dataset": "fashion_mnist", "image_size": 28, "train_samples": 1000, "test_samples": 500, "epochs": 3,
           "device": "cpu", "device_name": "Test CPU", "num_classes": 10}
CONFIG = {"results_name": "fixture", "datasets": ["fashion_mnist"], "imagenet": False, "runs": {},
          "experiments": {"finetune": {"bases": []}}, "throughput": {"device": "cpu"}}


def _numbers(text: str) -> list[float]:
    return [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", text)]


def test_every_rule_text_names_the_numbers_its_code_uses():
    for claim in CLAIMS.values():
        rule, measure = claim.rule, claim.measure
        numbers = _numbers(rule)
        if "trained seeds" in rule:
            assert f">= {code_rules.MIN_SEEDS}" in rule, claim.id
        if "Fisher" in rule:
            assert f"p <= {code_rules.ALPHA:g}" in rule, claim.id
        if measure["kind"] == "depth":
            assert -float(measure["tolerance"]) in numbers, claim.id
        if measure.get("expect") == "equal":
            tol = float(measure["tolerance"])
            assert f"[{1 - tol:g}, {1 + tol:g}]" in rule, claim.id
        if measure["kind"] == "ablation_scaling":
            assert float(measure["threshold"]) in numbers, claim.id
        if measure["kind"] == "accuracy_level":
            assert float(measure["above"]) in numbers, claim.id
        if measure["kind"] in ("pruning", "pruning_max_ratio") and "chance" in rule:
            stated = f"within {DID_NOT_TRAIN_MARGIN:g} points of chance" in rule
            assert stated or claim.id == "pruning_accuracy_at_speed", claim.id
        if measure["kind"] == "counts":
            assert f"{float(measure['tolerance']):.0%}".replace("%", " %") in rule, claim.id


# --- independent implementations of the stated rules ------------------------------------------

def _failed(top1: float, loss: float, classes: int = 10) -> bool:
    """The did-not-train rule as the ledger states it (stats.py's constants: margin in points and nats)."""
    return top1 < 100 / classes + DID_NOT_TRAIN_MARGIN or loss >= math.log(classes) - DID_NOT_TRAIN_LOSS_MARGIN


def _welch(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    diff = a.mean() - b.mean()
    half = stats.t.ppf(0.975, dof) * se
    return diff - half, diff + half


def _fisher_p(fail_x, n_x, fail_y, n_y):
    """P(X fails at least fail_x times | margins): the hypergeometric tail, written out."""
    total_fail, total = fail_x + fail_y, n_x + n_y
    return sum(math.comb(total_fail, k) * math.comb(total - total_fail, n_x - k)
               for k in range(fail_x, min(total_fail, n_x) + 1)) / math.comb(total, n_x)


def _stated_accuracy_rule(rule: str, a_rows, b_rows, *, threshold=0.0, higher=True) -> str:
    """The accuracy rules of the ledger's text: failure test first where the rule names one, then Welch
    over trained seeds with at least the stated number per side."""
    min_seeds = int(re.search(r">= (\d+) per", rule).group(1))
    alpha = float(re.search(r"p <= ([0-9.]+)", rule).group(1)) if "Fisher" in rule else None
    fa = [_failed(t, loss) for t, loss in a_rows]
    fb = [_failed(t, loss) for t, loss in b_rows]
    worse, better = (fb, fa) if higher else (fa, fb)
    failure_claim = "a failure claim" in rule
    if alpha is not None:
        if failure_claim and _fisher_p(sum(worse), len(worse), sum(better), len(better)) <= alpha + 1e-9:
            return "reproduced"
        if _fisher_p(sum(better), len(better), sum(worse), len(worse)) <= alpha + 1e-9:
            return "not reproduced"
    ta = [t for (t, _), f in zip(a_rows, fa) if not f]
    tb = [t for (t, _), f in zip(b_rows, fb) if not f]
    if min(len(ta), len(tb)) < min_seeds:
        return "inconclusive"
    low, high = _welch(ta, tb)
    claim_side = low > threshold if higher else high < threshold
    other_side = high < threshold if higher else low > threshold
    return "reproduced" if claim_side else "not reproduced" if other_side else "inconclusive"


def _write_seeds(root, experiment, runs):
    folder = root / experiment / "fashion_mnist"
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"run": label.replace(" ", "_"), "seed": seed, "top1": top1, "top5": min(100.0, top1 + 5),
             "test_loss": loss, **CONTEXT}
            for label, values in runs.items() for seed, (top1, loss) in enumerate(values)]
    pd.DataFrame(rows).to_csv(folder / "seeds.csv", index=False)
    pd.DataFrame([{"run": label.replace(" ", "_"), "label": label} for label in runs]).to_csv(
        folder / "summary.csv", index=False)


def _random_side(rng, mean, n, fail_share):
    values = []
    for _ in range(n):
        if rng.random() < fail_share:
            values.append((float(rng.uniform(8, 18)), float(rng.choice([2.31, 1.2]))))
        else:
            values.append((float(rng.normal(mean, 1.5)), float(rng.uniform(0.3, 0.8))))
    return values


@pytest.mark.parametrize("case", range(40))
def test_accuracy_and_depth_rules_match_their_text(tmp_path, case):
    rng = np.random.default_rng(case)
    n_a, n_b = int(rng.integers(2, 6)), int(rng.integers(2, 6))
    gap = float(rng.choice([-3.0, -0.5, 0.0, 0.5, 3.0]))
    depth_rows = {"ResNet 21": _random_side(rng, 85, n_b, 0.0), "ResNet 133": _random_side(rng, 85 + gap, n_a, 0.1),
                  "RepVGG 21": _random_side(rng, 84, n_b, 0.0),
                  "RepVGG 133": _random_side(rng, 84 - abs(gap), n_a, float(rng.choice([0.0, 0.5, 1.0])))}
    _write_seeds(tmp_path, "depth_study", depth_rows)
    sota = {"RMNet 26x3_32": _random_side(rng, 85 + gap, n_a, 0.2), "ResNet 34": _random_side(rng, 85, n_b, 0.2)}
    _write_seeds(tmp_path, "sota", sota)
    evidence = Evidence(tmp_path, CONFIG)
    expected = {
        "table1_acc_vs_resnet34": _stated_accuracy_rule(CLAIMS["table1_acc_vs_resnet34"].rule, sota["RMNet 26x3_32"],
                                                        sota["ResNet 34"]),
        "depth_rmnet_beats_repvgg_at_133": _stated_accuracy_rule(
            CLAIMS["depth_rmnet_beats_repvgg_at_133"].rule, depth_rows["ResNet 133"], depth_rows["RepVGG 133"]),
        "depth_resnet_holds": _stated_accuracy_rule(CLAIMS["depth_resnet_holds"].rule, depth_rows["ResNet 133"],
                                                    depth_rows["ResNet 21"], threshold=-1.0),
        "depth_repvgg_falls": _stated_accuracy_rule(CLAIMS["depth_repvgg_falls"].rule, depth_rows["RepVGG 133"],
                                                    depth_rows["RepVGG 21"], threshold=-1.0, higher=False),
    }
    for claim_id, verdict in expected.items():
        got = judge([CLAIMS[claim_id]], evidence).iloc[0]
        assert got["verdict"] == verdict, (claim_id, got["note"])


@pytest.mark.parametrize("low, high, expected", [(1.02, 1.10, "reproduced"), (0.90, 0.98, "not reproduced"),
                                                 (0.97, 1.04, "inconclusive")])
def test_speed_rules_match_their_text(tmp_path, low, high, expected):
    (tmp_path / "speed").mkdir()
    base = {"device": "cpu", "device_name": "Test CPU", "threads": 1, "batch_size": 8, "input_size": "3x32x32",
            "dtype": "float32", "images_per_sec_a": 2.0, "images_per_sec_b": 1.0, "rounds": 8, "status": "ok",
            "unstable": False, "ratio": (low + high) / 2, "ratio_ci_low": low, "ratio_ci_high": high}
    pd.DataFrame([{**base, "claim_id": "table1_speed_vs_resnet34"}, {**base, "claim_id": "table2_rmnetv1_speed_of_v1"}]
                 ).to_csv(tmp_path / "speed" / "pairs.csv", index=False)
    evidence = Evidence(tmp_path, CONFIG)
    assert judge([CLAIMS["table1_speed_vs_resnet34"]], evidence).iloc[0]["verdict"] == expected
    bounds = [float(x) for x in re.search(r"inside \[([0-9.]+), ([0-9.]+)\]", CLAIMS["table2_rmnetv1_speed_of_v1"].rule
                                          ).groups()]
    inside = "reproduced" if bounds[0] <= low and high <= bounds[1] else (
        "not reproduced" if high < bounds[0] or low > bounds[1] else "inconclusive")
    assert judge([CLAIMS["table2_rmnetv1_speed_of_v1"]], evidence).iloc[0]["verdict"] == inside


@pytest.mark.parametrize("small, large", [((1.30, 0.02), (1.00, 0.02)), ((1.00, 0.02), (1.30, 0.02)),
                                          ((1.05, 0.05), (1.00, 0.05))])
def test_ablation_trend_rule_matches_its_text(tmp_path, small, large):
    (tmp_path / "ablation").mkdir()
    rows = [{"factor": "width", "value": value, "speedup": s, "speedup_ci_low": s - h, "speedup_ci_high": s + h,
             "unstable": False, "device": "cpu", "device_name": "Test CPU", "threads": 1, "model": "m",
             "input_size": "3x32x32"} for value, (s, h) in ((16, small), (32, (1.1, 0.5)), (64, large))]
    pd.DataFrame(rows).to_csv(tmp_path / "ablation" / "speed.csv", index=False)
    # the text: effect = smallest - largest, half-widths in quadrature; the middle point never decides
    effect, half = small[0] - large[0], math.hypot(small[1], large[1])
    expected = "reproduced" if effect - half > 0 else "not reproduced" if effect + half < 0 else "inconclusive"
    assert "quadrature" in CLAIMS["ablation_width"].rule
    assert judge([CLAIMS["ablation_width"]], Evidence(tmp_path, CONFIG)).iloc[0]["verdict"] == expected


def test_pruning_points_at_chance_never_decide(tmp_path):
    (tmp_path / "pruning").mkdir()
    rows = []
    for seed in range(3):
        for ratio in (0.1, 0.3, 0.5):
            rows.append({"seed": seed, "method": "ResNet 18", "pruned_params_ratio": ratio, "top1": 80 - 10 * ratio,
                         "threshold": ratio, "input_size": "1x28x28", "test_samples": 500, "device_name": "Test CPU",
                         "threads": 1, "batch_size": 8, "speedup_vs_unpruned_ratio": 1 + ratio})
            # RMNet: above chance only where ResNet is not run; at chance inside ResNet's range
            rows.append({"seed": seed, "method": "RMNet 18", "pruned_params_ratio": ratio, "top1": 10.0 + seed * 0.1,
                         "threshold": ratio, "input_size": "1x28x28", "test_samples": 500, "device_name": "Test CPU",
                         "threads": 1, "batch_size": 8, "speedup_vs_unpruned_ratio": 1 + ratio})
    pd.DataFrame(rows).to_csv(tmp_path / "pruning" / "fashion_mnist.csv", index=False)
    row = judge([CLAIMS["pruning_accuracy_at_ratio"]], Evidence(tmp_path, CONFIG)).iloc[0]
    assert row["verdict"] == "inconclusive" and "above chance" in row["note"]
    assert judge([CLAIMS["pruning_max_ratio"]], Evidence(tmp_path, CONFIG)).iloc[0]["verdict"] == "inconclusive"


def test_failure_claim_names_the_failed_seeds(tmp_path):
    _write_seeds(tmp_path, "depth_study", {
        "ResNet 133": [(85.0, 0.5), (85.3, 0.5), (84.9, 0.5)],
        "RepVGG 133": [(10.0, 2.303), (15.6, 2.306), (11.0, 2.30)],
        "ResNet 21": [(84.0, 0.5)] * 3, "RepVGG 21": [(83.0, 0.5), (83.5, 0.5), (83.2, 0.5)]})
    row = judge([CLAIMS["depth_rmnet_beats_repvgg_at_133"]], Evidence(tmp_path, CONFIG)).iloc[0]
    assert row["verdict"] == "reproduced" and "RepVGG 133 seed 0, 1, 2" in row["note"] and "Fisher" in row["note"]


def test_every_claim_gets_a_verdict_or_says_what_would_run_it(tmp_path):
    frame = judge(list(CLAIMS.values()), Evidence(tmp_path, CONFIG))
    assert set(frame["id"]) == set(CLAIMS)
    not_run = frame[frame["verdict"] == "not run in this profile"]
    assert not_run["note"].str.contains(r"needs|experiments\.|rule |ablation\.").all()
