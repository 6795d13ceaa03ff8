"""The Snakemake workflow: config validation, the paper plan, a missing dataset, logs and resume."""

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("snakemake")
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def _snakemake(*args, cwd=ROOT):
    return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def _config_with(tmp_path, **changes):
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for dotted, value in changes.items():
        target = config
        *parents, key = dotted.split(".")
        for parent in parents:
            target = target[parent]
        target[key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_lint_is_clean():
    result = _snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "good condition" in result.stdout + result.stderr


def test_paper_profile_lists_the_full_plan(tmp_path, monkeypatch):
    # planned for a node of the paper profile's size, with empty stand-ins where the data would be
    # (the plan-time checks: tests/workflow/test_plan_time.py)
    overlay = tmp_path / "data.json"
    subprocess.run([sys.executable, str(ROOT / "replication/launch/plan_checks.py"), "stand-ins",
                    str(tmp_path / "data")], stdout=overlay.open("w"), check=True)
    monkeypatch.setenv("RMNET_NODE_CPUS", "64")
    monkeypatch.setenv("RMNET_NODE_GPUS", "8")
    result = _snakemake("-n", "--workflow-profile", "profiles/paper", "--configfile", "config/paper.yaml", str(overlay))
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for name in ("repvgg_d133", "resnet_d133", "rmnet26x3_32", "repvgg34_in", "resnet18_sparse"):
        assert name in out
    assert "results/paper/throughput/throughput.csv" in out


def test_invalid_config_value_is_rejected_with_its_key(tmp_path):
    config = _config_with(tmp_path, **{"throughput.batch_size": 0})
    result = _snakemake("-n", "--configfile", str(config))
    assert result.returncode != 0
    assert "batch_size" in result.stdout + result.stderr


def test_unknown_dataset_is_rejected_by_the_schema(tmp_path):
    config = _config_with(tmp_path, datasets=["svhn"])
    result = _snakemake("-n", "--configfile", str(config))
    assert result.returncode != 0 and "svhn" in result.stdout + result.stderr


def test_missing_dataset_stops_before_any_job(tmp_path):
    work = tmp_path / "work"
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".venv", "results", "runs", "figures", "logs",
                                                               ".snakemake", "benchmarks", ".git"))
    config = _config_with(tmp_path, datasets=["cifar10"], **{"data.roots": {"cifar10": str(tmp_path / "no-cifar")}})
    result = _snakemake("--cores", "1", "--configfile", str(config), cwd=work)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "CIFAR10 not found" in output and "no-cifar" in output
    assert not (work / "results").exists()


def test_label_out_of_range_stops_before_any_job(tmp_path):
    import gzip
    import struct

    import numpy as np

    root = tmp_path / "fashion"
    root.mkdir()
    for split, count in (("train", 64), ("t10k", 32)):
        for kind, array in (("images", np.zeros((count, 28, 28), np.uint8)), ("labels", np.arange(count) % 10)):
            if kind == "labels" and split == "t10k":
                array[3] = 200
            header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
            (root / f"{split}-{kind}-idx{array.ndim}-ubyte.gz").write_bytes(
                gzip.compress(header + array.astype(np.uint8).tobytes()))
    work = tmp_path / "work"
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".venv", "results", "runs", "figures", "logs",
                                                               ".snakemake", "benchmarks", ".git"))
    config = _config_with(tmp_path, **{"data.roots": {"fashion_mnist": str(root)}})
    result = _snakemake("--cores", "1", "--configfile", str(config), cwd=work)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "t10k-labels-idx1-ubyte.gz: label 200 at index 3" in output
    assert not (work / "results").exists()


@pytest.mark.parametrize("changes, named", [
    ({"training.overrides": {"batch_size": -4}}, "batch_size"),
    ({"training.overrides": {"epochs": "two"}}, "two"),
    ({"throughput.batchsize": 8}, "batchsize"),
    ({"experiments.pruning.treshold": 0.1}, "treshold"),
    ({"experiments.mobilenet.v3": "mobilenetv2"}, "v3"),
    ({"experiments.finetune.epochs": 3}, "epochs"),
    ({"ablation.sweeps.depth": [1]}, "depth"),
    ({"training.device": "cdua"}, "cdua"),
    ({"runs.resnet34.model": "resnet34_cifra"}, "resnet34_cifra"),
    ({"experiments.sota": ["resnet34", "no_such_run"]}, "no_such_run"),
])
def test_config_errors_stop_the_dry_run_with_their_key(tmp_path, changes, named):
    """Values read only at job time must fail `snakemake -n`, not hours later."""
    result = _snakemake("-n", "--configfile", str(_config_with(tmp_path, **changes)))
    assert result.returncode != 0
    assert named in result.stdout + result.stderr


def test_killed_training_job_resumes_from_its_checkpoint(tmp_path):
    """SIGKILL the workflow mid-training; the rerun resumes after the last finished epoch, with
    each epoch once in metrics.csv (the checkpoint is not a Snakemake output, so it is not deleted)."""
    import os
    import signal
    import time

    work = _work_copy(tmp_path)
    config = tmp_path / "resume.yaml"
    config.write_text(yaml.safe_dump({"results_name": "resume",
                                      "training": {"overrides": {"epochs": 3, "batch_size": 64}},
                                      "data": {"train_subset": 1000, "test_subset": 100}}))
    target = "results/resume/train/fashion_mnist/resnet18/seed0/metrics.csv"
    options = ["--configfile", "config/config.yaml", str(config), "--", target]
    args = [*SNAKEMAKE, "--cores", "1", *options]
    checkpoint = work / "runs/resume/fashion_mnist/resnet18/seed0/checkpoint.pt"
    process = subprocess.Popen(args, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.5)
    assert checkpoint.exists(), "no checkpoint after the first epoch"
    os.killpg(process.pid, signal.SIGKILL)  # the scheduler and the training job die together
    process.wait()
    subprocess.run([*SNAKEMAKE, "--unlock", "--configfile", "config/config.yaml", str(config)], cwd=work,
                   capture_output=True, timeout=120)
    rerun = subprocess.run([*SNAKEMAKE, "--cores", "1", "--rerun-incomplete", *options], cwd=work,
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    log = (work / "logs/resume/train/fashion_mnist/resnet18/seed0.log").read_text()
    assert "epoch 1/3" not in log and "epoch 3/3" in log  # resumed, not restarted
    assert list(pd.read_csv(work / target)["epoch"]) == [1, 2, 3]

    # A deleted results metrics.csv is a missing output: the workflow regenerates it from the
    # finished checkpoint (no epoch retrained) instead of saying "Nothing to be done".
    trained = pd.read_csv(work / target)
    (work / target).unlink()
    again = subprocess.run(args, cwd=work, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Nothing to be done" not in again.stdout + again.stderr
    log = (work / "logs/resume/train/fashion_mnist/resnet18/seed0.log").read_text()
    assert "epoch 1/3" not in log and "epoch 3/3" not in log  # nothing retrained
    pd.testing.assert_frame_equal(pd.read_csv(work / target), trained)



def _work_copy(tmp_path):
    work = tmp_path / "work"
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".venv", "results", "runs", "figures", "logs",
                                                               ".snakemake", "benchmarks", ".git"))
    return work


def test_failed_job_leaves_its_traceback_in_its_log(tmp_path):
    """Every job is a shell step whose stdout and stderr go to its {log}: a failure is diagnosable."""
    work = _work_copy(tmp_path)
    config = _config_with(tmp_path, results_name="broken")
    for run in ("resnet18_in", "repvgg18_in"):  # Table 3's runs, 'trained' into files that are not metrics
        metrics = work / f"results/broken/train/fashion_mnist/{run}/seed0/metrics.csv"
        metrics.parent.mkdir(parents=True)
        metrics.write_text("not,metrics\n1,2\n")
    result = _snakemake("--cores", "1", "--configfile", str(config), "--",
                        "results/broken/table3/fashion_mnist/summary.csv", cwd=work)
    assert result.returncode != 0
    log = (work / "logs/broken/summary/table3_fashion_mnist.log").read_text()
    # the data layer names the file and what it lacks (the step logs its traceback too)
    assert "has no 'epoch' column" in log and "not, metrics" in log
    assert "[workflow step summary]" in log  # the step and its arguments head the log


def test_every_rule_is_a_logged_shell_step():
    """No `run:` blocks (they execute inside the scheduler, and their logs stay empty)."""
    rules = [*(ROOT / "workflow" / "rules").glob("*.smk"), ROOT / "Snakefile"]
    for path in rules:
        text = path.read_text()
        assert "\n    run:" not in text, f"{path.name} has a run: block"
        for block in text.split("\nrule ")[1:]:
            if "\n    shell:" in block:
                assert "> {log} 2>&1" in block, f"{path.name}: rule {block.split(':')[0]} does not log to {{log}}"
            else:
                assert block.split(":")[0] == "all", f"{path.name}: rule {block.split(':')[0]} has no shell step"


def test_a_profile_config_is_not_merged_over_the_embedded_one(tmp_path, monkeypatch):
    """paper.yaml is complete on its own: its runs keep the paper's widths and recipe, not the embedded
    config's 1/8 widths and 2-epoch overrides."""
    overlay = tmp_path / "data.json"  # stand-in data and a paper-sized node: the plan-time checks pass
    subprocess.run([sys.executable, str(ROOT / "replication/launch/plan_checks.py"), "stand-ins",
                    str(tmp_path / "data")], stdout=overlay.open("w"), check=True)
    monkeypatch.setenv("RMNET_NODE_CPUS", "64")
    monkeypatch.setenv("RMNET_NODE_GPUS", "8")
    result = _snakemake("-n", "--cores", "16", "--configfile", "config/paper.yaml", str(overlay), "--",
                        "results/paper/train/cifar10/resnet34/seed0/metrics.csv")
    assert result.returncode == 0, result.stderr[-2000:]
    payload = result.stdout[result.stdout.index("--run-config"):].split("--profile")[0]
    assert '"model_kwargs": {}' in payload and '"overrides": {}' in payload
    assert "[8, 16, 32, 64]" not in payload and '"epochs": 2' not in payload
