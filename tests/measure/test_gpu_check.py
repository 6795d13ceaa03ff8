"""scripts/gpu-check.sh's pieces (replication/experiments/gpu_check.py) without a GPU: the groups and
ratios it times, the paper's V100 ratios beside them, the claims they decide, the agreement statistics,
the report; and (slow) the whole --device cpu --quick run, kill-and-resume included."""

import math

import pandas as pd
import pytest

from replication.experiments import gpu_check
from replication.experiments.gpu_check import (
    Settings,
    agreement_rows,
    groups,
    median_error,
    paper_speeds,
    spearman,
    speed_claims,
)


def test_groups_cover_tables_1_to_3_with_both_ratio_kinds():
    found = {group.name: group for group in groups(Settings())}
    assert list(found) == ["table1_sota/CIFAR10", "table1_sota/CIFAR100", "table2_mobilenet/CIFAR10",
                           "table2_mobilenet/CIFAR100", "table3_repvgg_vs_resnet/ImageNet",
                           *[f"table1_sota/ImageNet/group{n}" for n in range(1, 6)]]
    cifar = found["table1_sota/CIFAR10"]
    assert ("rmnet_over_baseline", "RMNet 26x3_32", "deploy", "ResNet 34", "train") in cifar.ratios
    assert ("rm_over_residual", "RMNet 26x3_32", "deploy", "RMNet 26x3_32", "train") in cifar.ratios
    group5 = found["table1_sota/ImageNet/group5"]  # two RMNets, each over ResNeXt 101 (train form only)
    assert {r[1] for r in group5.ratios if r[0] == "rmnet_over_baseline"} == {"RMNet 101x6_16", "RMNet 152x6_32"}
    assert [m.forms for m in group5.members if m.label == "ResNeXt 101"] == [("train",)]


def test_paper_ratios_and_the_claims_they_decide():
    speeds = paper_speeds()
    assert speeds[("table1_sota", "CIFAR10", "RMNet 26x3_32")] / speeds[("table1_sota", "CIFAR10", "ResNet 34")] \
        == pytest.approx(10078.2 / 8208.4)
    assert speeds[("table2_mobilenet", "CIFAR10", "RMNetV1")] == 27720
    claims = speed_claims()
    assert claims[("rmnet26x3_32_cifar", "deploy", "resnet34_cifar", "train", 32)] == "table1_speed_vs_resnet34"
    assert claims[("mobilenetv2_rm_cifar", "deploy", "mobilenetv2_rm_cifar", "train", 32)] == \
        "table2_rmnetv1_faster_than_v2"


def test_rank_correlation_and_median_error():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 2], [1, 2]))
    assert median_error([1.1, 0.9, 2.0], [1.0, 1.0, 1.0]) == pytest.approx(0.1)


def test_agreement_and_report_from_rows():
    rows = [{"section": "ratio", "status": "ok", "dtype": "float32", "channels_last": False, "ratio_kind": kind,
             "pair_id": f"p{i}", "ratio": r, "predicted_ratio": p, "paper_v100_ratio": v, "predicted_device": "h200",
             "group": "g", "a_backbone": "A", "a_form": "deploy", "b_backbone": "B", "b_form": "train",
             "ratio_ci_low": r - 0.1, "ratio_ci_high": r + 0.1, "batch_size": 128}
            for i, (kind, r, p, v) in enumerate([("rm_over_residual", 1.2, 1.1, math.nan),
                                                 ("rmnet_over_baseline", 1.5, 1.4, 1.3),
                                                 ("rmnet_over_baseline", 0.9, 1.0, 1.1)])]
    agreement = agreement_rows(pd.DataFrame(rows))
    overall = next(row for row in agreement if row["ratio_kind"] == "all")
    assert overall["n_ratios"] == 3 and overall["spearman_vs_predicted"] == pytest.approx(1.0)
    assert overall["n_paper"] == 2
    frame = pd.DataFrame(rows + agreement)
    common = {"device": "cuda", "device_name": "NVIDIA H200", "torch_version": "2.11", "cuda_version": "13.0",
              "cudnn_version": 91000, "suite_commit": "abc", "quick": False}
    text = gpu_check.markdown(frame, common, 420, 400)
    assert "| g | A (deploy) / B (train) | rm_over_residual | 1.200 [1.100, 1.300] | n/a | 1.100 | ok |" in text
    assert "Spearman vs predicted" in text


@pytest.mark.slow
def test_quick_cpu_run_end_to_end(tmp_path):
    """The CI run: every section, tiny sizes, on the CPU (the budget is generous: a busy machine is slow)."""
    path = gpu_check.run("cpu", quick=True, out=tmp_path, budget_s=1800, log=lambda text: None)
    frame = pd.read_csv(path)
    assert path.name == "gpu-cpu.csv" and (tmp_path / "gpu-cpu.md").exists()
    ratios = frame[frame["section"] == "ratio"]
    assert (ratios["status"] == "ok").all() and ratios["ratio"].notna().all()
    assert {"device_name", "dtype", "batch_size", "channels_last", "torch_version", "suite_commit", "clock",
            "paper_v100_ratio", "predicted_ratio", "ratio_ci_low", "ratio_ci_high"} <= set(frame.columns)
    resume = frame[frame["section"] == "resume"].iloc[0]
    assert resume["status"] == "ok" and bool(resume["identical"])
    assert (frame["section"] == "agreement").any()


def test_run_order_budget_and_outputs_without_timing(tmp_path, monkeypatch):
    """The orchestration alone (timing, models and training stubbed): the paper's setting for every group
    first, then the resume section, then the other variants; a group the budget cannot fit is a
    'skipped: time budget' row; the CSV and report are written."""
    from torch import nn

    from replication.measure.interleaved import Interleaved

    def fake_measure(models, config, *, rounds, min_rounds, deadline):
        result = Interleaved(tuple(models), config.batch_size, config.iters)
        result.seconds = {name: [1.0 + index, 1.1 + index] for index, name in enumerate(models)}
        return result

    monkeypatch.setattr(gpu_check, "measure_interleaved", fake_measure)
    monkeypatch.setattr(gpu_check.Forms, "get", lambda self, member, size: {"train": nn.Identity(),
                                                                           "deploy": nn.Identity()})
    monkeypatch.setattr(gpu_check.Predictor, "images_per_sec", lambda self, key, module, shape, dtype: 100.0)
    monkeypatch.setattr(gpu_check, "resume_check", lambda device, settings, budget, workdir: {
        "section": "resume", "status": "ok", "identical": True, "model": "m", "train_images": 8, "batch_size": 4,
        "amp": False, "killed_in_epoch": 2, "resumed_from_epoch": 1, "resumed_top1": 10.0,
        "reference_top1": 10.0, "resumed_test_loss": 2.0, "reference_test_loss": 2.0})
    lines = []
    path = gpu_check.run("cpu", quick=True, out=tmp_path, budget_s=1000, log=lines.append)
    order = [line.split("] ", 1)[1] for line in lines if line.startswith("[gpu-check ") and "left]" in line]
    assert order == ["table1_sota/CIFAR10 float32 channels_last=False",
                     "table2_mobilenet/CIFAR10 float32 channels_last=False",
                     "table1_sota/ImageNet/group1 float32 channels_last=False",
                     "kill-and-resume training",
                     "table1_sota/CIFAR10 bfloat16 channels_last=True",
                     "table2_mobilenet/CIFAR10 bfloat16 channels_last=True"]
    frame = pd.read_csv(path)
    ok = frame[(frame["section"] == "ratio") & (frame["status"] == "ok")]
    assert len(ok) and ok["ratio"].notna().all() and (ok["predicted_ratio"] == 1.0).all()
    assert "## Kill and resume" in (tmp_path / "gpu-cpu.md").read_text()
    lines.clear()
    tight = gpu_check.run("cpu", quick=True, out=tmp_path / "tight", budget_s=1, log=lines.append)
    skipped = pd.read_csv(tight)
    assert (skipped[skipped["section"] == "ratio"]["status"] == "skipped: time budget").all()
    # a run cut short (no report): the report from its CSV
    (tmp_path / "gpu-cpu.md").unlink()
    assert gpu_check.report_only(path) == tmp_path / "gpu-cpu.md"
    assert "ended before its report" in (tmp_path / "gpu-cpu.md").read_text()
