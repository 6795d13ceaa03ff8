"""verify-evidence: a tiny training run made by the engine is rerun bit-identically; a tampered loss is
drift; speed ratios are judged against their committed CI; the sample fits its budget."""

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from replication import evidence_check as ec
from replication.cli import main
from replication.measure.throughput import ThroughputConfig, environment

TINY_RUN = {"model": "resnet18_cifar", "label": "ResNet 18", "model_kwargs": {"channels": [8, 16, 32, 64],
                                                                              "stem_width": 8}}


def _tiny_profile(root: Path, fashion_root: Path) -> tuple[Path, Path]:
    """A profile config and its results folder holding one training run written by the engine, made
    the way rule train makes it (``python -m replication train --run-config``, one thread)."""
    config = {"results_name": "tiny", "datasets": ["fashion_mnist"],
              "data": {"image_size": 16, "train_subset": 64, "test_subset": 32,
                       "roots": {"fashion_mnist": str(fashion_root)}},
              "training": {"preset": "embedded", "overrides": {"epochs": 2, "batch_size": 32}, "seed": 0,
                           "seeds": [0], "device": "cpu", "workers": 0},
              "runs": {"tiny": TINY_RUN}, "experiments": {}}
    config_path = root / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config))
    results = root / "results" / "tiny"
    payload = ec.training_payload(config, "fashion_mnist", "tiny")
    metrics = results / "train" / "fashion_mnist" / "tiny" / "seed0" / "metrics.csv"
    assert main(["train", "--run-config", json.dumps(payload), "--profile", "tiny", "--dataset", "fashion_mnist",
                 "--metrics", str(metrics), "--output-dir", str(root / "runs" / "seed0"),
                 "--threads", str(ec.TRAIN_THREADS), "--seed", "0"]) == 0
    return config_path, results


def _tamper(metrics: Path, column: str) -> None:
    rows = ec.read_rows(metrics)
    rows[-1][column] = repr(float(rows[-1][column]) + 1e-12)
    with open(metrics, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.slow
def test_rerun_is_bit_identical_and_a_tampered_loss_is_drift(fashion_root, tmp_path, capsys):
    config, results = _tiny_profile(tmp_path, fashion_root)
    args = ["verify-evidence", "--configfile", str(config), "--results", str(results), "--all"]
    assert main(args + ["--csv", str(tmp_path / "ok.csv")]) == 0
    report = ec.read_rows(tmp_path / "ok.csv")
    assert {row["what"] for row in report} == {"recipe", *ec.LOSS_ACCURACY}
    assert {row["verdict"] for row in report} == {"ok"}

    _tamper(results / "train" / "fashion_mnist" / "tiny" / "seed0" / "metrics.csv", "test_loss")
    assert main(args + ["--csv", str(tmp_path / "drift.csv")]) == 1
    verdicts = {row["what"]: row["verdict"] for row in ec.read_rows(tmp_path / "drift.csv")}
    assert verdicts.pop("test_loss") == "DRIFT"
    assert set(verdicts.values()) == {"ok"}  # the other columns still reproduce
    assert "DRIFT" in capsys.readouterr().out


def test_compare_metrics_reports_the_first_differing_epoch_and_a_changed_recipe():
    committed = [{"model": "m", "epochs": "2", "epoch": "1", "seed": "0", "train_loss": "0.5", "top1": "50.0"},
                 {"model": "m", "epochs": "2", "epoch": "2", "seed": "0", "train_loss": "0.4", "top1": "60.0"}]
    same = ec.compare_metrics(committed, [dict(row) for row in committed], "run")
    assert {f.what: f.verdict for f in same} == {"recipe": "ok", "train_loss": "ok", "top1": "ok"}
    rerun = [dict(row) for row in committed]
    rerun[0]["train_loss"] = "0.50000000000000001"  # same float, other text: still drift (text is compared)
    rerun[1]["epochs"] = rerun[0]["epochs"] = "3"
    findings = {f.what: f for f in ec.compare_metrics(committed, rerun, "run")}
    assert findings["train_loss"].verdict == "DRIFT" and "first difference at 1" in findings["train_loss"].note
    assert findings["recipe"].verdict == "DRIFT" and "epochs" in findings["recipe"].committed
    assert findings["top1"].verdict == "ok"


def _speed_row(config: ThroughputConfig, low: float, high: float) -> dict[str, str]:
    torch.set_num_threads(config.threads or 1)
    row = {key: str(value) for key, value in environment(config).items()}
    return {**row, "ratio": str((low + high) / 2), "ratio_ci_low": str(low), "ratio_ci_high": str(high),
            "rounds": "2", "workers": "1", "status": "ok"}


def _tiny(width: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(12, width), nn.ReLU(), nn.Linear(width, 2)).eval()


def test_speed_ratio_inside_its_ci_is_ok_and_outside_is_drift_after_a_retry(tmp_path):
    config = ThroughputConfig(batch_size=2, input_size=(3, 2, 2), warmup=1, iters=20, repeats=1, device="cpu",
                              threads=1)
    ctx = ec.Context({"results_name": "t"}, tmp_path, tmp_path, retries=1)
    args = dict(name="speed/x", build_a=lambda: _tiny(4), build_b=lambda: _tiny(8), prefix="ratio")
    [ok] = ec._speed_findings(ctx, _speed_row(config, 0.0, 1e9), **args)
    assert ok.verdict == "ok" and "attempts" not in ok.note
    [drift] = ec._speed_findings(ctx, _speed_row(config, 1e6, 2e6), **args)
    assert drift.verdict == "DRIFT" and drift.note.startswith("2 attempts")
    elsewhere = {**_speed_row(config, 0.0, 1e9), "device_name": "Some Other CPU"}
    [na] = ec._speed_findings(ctx, elsewhere, **args)
    assert na.verdict == "n/a" and "Some Other CPU" in na.note
    unrecorded = {**_speed_row(config, 0.0, 1e9), "cpu_allocator": ""}
    [old] = ec._speed_findings(ctx, unrecorded, **args)
    assert old.verdict == "n/a" and "cpu_allocator" in old.note
    assert ec.failed([ok, na]) is False and ec.failed([ok, na], strict=True) is True
    assert ec.failed([ok, drift]) is True


def _check(kind: str, name: str, cost: float, *needs: ec.TrainKey, comparable: bool = True) -> ec.Check:
    return ec.Check(kind, name, cost, tuple(needs), lambda ctx: [], comparable=comparable)


def test_sample_fits_its_budget_shares_trainings_and_is_deterministic_per_seed():
    keys = [ec.TrainKey("d", run, seed) for run in ("a", "b", "c") for seed in (0, 1, 2)]
    costs = {key: {"a": 30.0, "b": 60.0, "c": 500.0}[key.run] for key in keys}
    checks = [_check("train", f"train/d/{k.run}/seed{k.seed}", 0.0, k) for k in keys]
    checks += [_check("speed", f"speed/p{i}", 5.0 * (i + 1)) for i in range(4)]
    checks += [_check("speed", "speed/elsewhere", 1000.0, comparable=False)]
    checks += [_check("finetune", "finetune/d/a/bn/seed0", 20.0, keys[0])]
    checks += [_check("pruning", "pruning/d/seed0", 1.0, keys[0])]
    chosen, estimate = ec.select(checks, costs, budget_s=150, sample=None, seed=0)
    names = [check.name for check in chosen]
    assert estimate <= 150 and estimate == ec.marginal_total(chosen, costs)
    assert not any(name.startswith("train/d/c") or name.startswith("pruning") for name in names)
    assert "speed/elsewhere" in names  # reported n/a, costs nothing
    assert {name.split("/seed")[0] for name in names if name.startswith("train")} == {"train/d/a", "train/d/b"}
    assert chosen == ec.select(checks, costs, budget_s=150, sample=None, seed=0)[0]
    assert len(ec.select(checks, costs, budget_s=None, sample=3, seed=5)[0]) == 3
    everything, _ = ec.select(checks, costs, budget_s=None, sample=None, seed=0, everything=True)
    assert len(everything) == len(checks)
    finetune_and_base = ec.marginal_total([checks[-2], checks[0]], costs)
    assert finetune_and_base == 20.0 + 30.0  # the base training counted once


def test_a_speed_rerun_drifts_only_when_its_ci_misses_the_committed_one_by_more_than_5_percent():
    committed = {"ratio": "0.825", "ratio_ci_low": "0.799", "ratio_ci_high": "0.863"}
    # an idle CI rerun: its median just below the committed CI, its own CI overlapping it
    overlapping = ec._ratio_finding("p", "ratio", committed, [(0.798, 0.771, 0.820)], "ratio")
    assert overlapping.verdict == ec.OK and overlapping.note == ""
    # the between-session shift seen on this machine: a narrow CI just below, inside the 5 % resolution
    shifted = ec._ratio_finding("p", "ratio", committed, [(0.779, 0.778, 0.783)], "ratio")
    assert shifted.verdict == ec.OK and "misses the committed CI by 1.9% of the ratio" in shifted.note
    # 0.799 - 0.05 * 0.825 = 0.758: a CI ending below that is drift, on either side
    assert ec._ratio_finding("p", "ratio", committed, [(0.750, 0.745, 0.755)], "ratio").verdict == ec.DRIFT
    assert ec._ratio_finding("p", "ratio", committed, [(0.910, 0.905, 0.915)], "ratio").verdict == ec.DRIFT
    # a second attempt that passes is enough; a rerun without a CI is a point and is held to the same margin
    two_attempts = [(0.70, 0.68, 0.72), (0.80, 0.78, 0.81)]
    assert ec._ratio_finding("p", "ratio", committed, two_attempts, "ratio").verdict == ec.OK
    assert ec._ratio_finding("p", "ratio", committed, [(0.70, 0.70, 0.70)], "ratio").verdict == ec.DRIFT


def test_the_drift_margin_is_the_pairs_own_stability_tolerance():
    import inspect

    from replication.measure.paired import measure_pair

    assert ec.SPEED_RESOLUTION == inspect.signature(measure_pair).parameters["tolerance"].default


def test_a_first_attempt_inside_the_resolution_margin_is_not_timed_again(tmp_path, monkeypatch):
    from types import SimpleNamespace

    config = ThroughputConfig(batch_size=2, input_size=(3, 2, 2), warmup=1, iters=2, repeats=1, device="cpu",
                              threads=1)
    ctx = ec.Context({"results_name": "t"}, tmp_path, tmp_path, retries=1)
    timed = []

    def measure(*args, **kwargs):  # a rerun whose CI ends 1 % of the ratio below the committed CI
        timed.append(args)
        return SimpleNamespace(ratio=0.98, ci_low=0.97, ci_high=0.99, busy=False, other_cpu=0.0)

    monkeypatch.setattr(ec, "_measure", measure)
    row = {**_speed_row(config, 1.00, 1.10), "ratio": "1.0"}
    [finding] = ec._speed_findings(ctx, row, name="speed/x", build_a=lambda: _tiny(4), build_b=lambda: _tiny(8),
                                   prefix="ratio")
    assert finding.verdict == "ok" and "misses the committed CI by 1.0% of the ratio" in finding.note
    assert len(timed) == 1  # the retry is for a drift, and this attempt already passes
