"""The workflow on a real scheduler: a single-node SLURM (scripts/slurm-local.sh) runs torchrun training
and the SLURM profile, and a training job that SLURM cancels mid-epoch resumes on the rerun.

Skipped where SLURM is not installed or the tests do not run as root (the daemons run as root); CI
installs and starts it first (.ci/run). A cluster these tests start is stopped when they end, pass or fail.
"""

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "scripts" / "slurm-local.sh"
pytest.importorskip("snakemake_executor_plugin_slurm")

# The tiny settings of the DDP test in tests/train/test_engine.py: a BN-free model (CPU DDP has no
# SyncBatchNorm) and no augmentation (random crops come from each process's own RNG).
DDP_SCRIPT = textwrap.dedent('''
    import os
    import sys
    import torch
    from torch import nn
    from replication.data import DataConfig
    from replication.train import TrainConfig, train

    out = sys.argv[1]
    print(f"SLURM_JOB_ID={os.environ.get('SLURM_JOB_ID')} RANK={os.environ['RANK']} "
          f"WORLD_SIZE={os.environ['WORLD_SIZE']}", flush=True)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    data = DataConfig("fashion_mnist", image_size=16, augment=False, train_subset=256, test_subset=128)
    config = TrainConfig(model="tiny-plain", data=data, preset="embedded", overrides={"epochs": 2, "batch_size": 32},
                         output_dir=out, device="cpu", max_steps_per_epoch=4)
    train(config, model=model)
''')


@pytest.fixture(scope="module")
def slurm():
    """Environment for SLURM commands; starts the single-node cluster if it is not up, stops it after."""
    if not all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "sbatch", "munged")):
        pytest.skip("SLURM is not installed (bash scripts/slurm-local.sh up installs slurm-wlm and munge)")
    if os.geteuid() != 0:
        pytest.skip("the single-node SLURM runs its daemons as root")
    conf = subprocess.run(["bash", CLUSTER, "env"], capture_output=True, text=True, check=True).stdout
    env = {**os.environ, "SLURM_CONF": conf.strip().split("=", 1)[1]}
    start = subprocess.run(["bash", CLUSTER, "status"], capture_output=True, check=False, env=env).returncode != 0
    if start:
        up = subprocess.run(["bash", CLUSTER, "up"], capture_output=True, check=False, text=True, env=env, timeout=600)
        if up.returncode != 0:
            subprocess.run(["bash", CLUSTER, "down"], capture_output=True, check=False, env=env, timeout=120)
            pytest.fail(f"scripts/slurm-local.sh up failed:\n{up.stdout}{up.stderr}")
    try:
        cpus = subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, check=False, text=True,
                              env=env).stdout.split()
        if max(map(int, cpus or ["0"])) < 2:
            pytest.skip("the torchrun jobs need a node with 2 CPUs")
        yield env
    finally:
        if start:
            subprocess.run(["bash", CLUSTER, "down"], capture_output=True, check=False, env=env, timeout=120)


def _sbatch_torchrun(env, script, processes, out, log):
    """Run torchrun with ``processes`` gloo processes as one SLURM job (one task, a CPU per process)."""
    command = (f"exec {sys.executable} -m torch.distributed.run --standalone --nproc_per_node {processes} "
               f"{script} {out}")
    result = subprocess.run(["sbatch", "--parsable", "--wait", "--job-name", f"rmnet-test-ddp{processes}",
                             "--ntasks=1", f"--cpus-per-task={processes}", "--mem=3000", "--time=15",
                             f"--output={log}", f"--chdir={ROOT}", f"--wrap={command}"],
                            capture_output=True, text=True, env=env, timeout=900, check=False)
    assert result.returncode == 0, f"{result.stderr}\n{Path(log).read_text()[-3000:] if Path(log).exists() else ''}"
    return result.stdout.strip().split(";")[0]


def test_torchrun_in_slurm_with_two_processes_matches_one_process(slurm, tmp_path):
    from replication.train.checkpoint import load_training_checkpoint

    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    job_one = _sbatch_torchrun(slurm, script, 1, tmp_path / "one", tmp_path / "one.log")
    job_two = _sbatch_torchrun(slurm, script, 2, tmp_path / "two", tmp_path / "two.log")

    log = (tmp_path / "two.log").read_text()
    for rank in (0, 1):  # both processes ran inside the SLURM job
        assert f"SLURM_JOB_ID={job_two} RANK={rank} WORLD_SIZE=2" in log, log[-2000:]
    assert f"SLURM_JOB_ID={job_one} RANK=0 WORLD_SIZE=1" in (tmp_path / "one.log").read_text()
    one, two = pd.read_csv(tmp_path / "one" / "metrics.csv"), pd.read_csv(tmp_path / "two" / "metrics.csv")
    assert list(one["world_size"]) == [1, 1] and list(two["world_size"]) == [2, 2]
    assert list(two["epoch"]) == list(one["epoch"]) == [1, 2]
    for column in ("train_loss", "train_top1", "test_loss", "top1", "top5"):
        assert two[column].to_numpy() == pytest.approx(one[column].to_numpy(), rel=1e-5, abs=1e-5), column
    weights_one = load_training_checkpoint(tmp_path / "one" / "checkpoint.pt", "tiny-plain")["model"]
    weights_two = load_training_checkpoint(tmp_path / "two" / "checkpoint.pt", "tiny-plain")["model"]
    for key in weights_one:
        torch.testing.assert_close(weights_two[key], weights_one[key], rtol=1e-5, atol=1e-6)


def _processes_with(text):
    """Command lines of running processes that contain ``text``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process ended meanwhile
            continue
        if text in args:
            found.append(args)
    return found


def _slurm_jobs(text):
    return re.findall(r"submitted with SLURM jobid (\d+)", text)


def test_training_job_cancelled_by_slurm_resumes_from_its_last_epoch(slurm, tmp_path):
    """scancel a training job (torchrun, 2 gloo processes) of the workflow mid-epoch; the workflow
    reports it failed, and the rerun resumes after the last finished epoch: every epoch once, the
    epochs finished before the kill kept as they were."""
    from replication.train.checkpoint import load_training_checkpoint

    work = tmp_path / "work"
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".venv", "results", "runs", "figures", "logs",
                                                               ".snakemake", "benchmarks", ".git"))
    config = tmp_path / "slurm_resume.yaml"
    config.write_text(yaml.safe_dump({
        "results_name": "slurm_resume",
        "training": {"overrides": {"epochs": 3, "batch_size": 64},
                     "launcher": "torchrun --standalone --nproc_per_node 2"},
        "data": {"train_subset": 1500, "test_subset": 100}}))
    target = "results/slurm_resume/train/fashion_mnist/resnet18/seed0/metrics.csv"
    command = [sys.executable, "-m", "snakemake", "--workflow-profile", "profiles/slurm",
               "--slurm-init-seconds-before-status-checks", "2",
               "--configfile", "config/config.yaml", str(config), "--", target]
    env = {**slurm, "RMNET_SLURM_CPUS": "2"}
    run_dir = work / "runs/slurm_resume/fashion_mnist/resnet18/seed0"

    first_log = tmp_path / "first.log"
    with first_log.open("w") as sink:
        first = subprocess.Popen(command, cwd=work, stdout=sink, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 600
        while not (run_dir / "checkpoint.pt").exists() and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.2)
        jobs = _slurm_jobs(first_log.read_text())
        assert jobs and (run_dir / "checkpoint.pt").exists(), f"no epoch finished:\n{first_log.read_text()[-3000:]}"
        subprocess.run(["scancel", jobs[0]], env=slurm, check=True)
        first.wait(timeout=600)
    output = first_log.read_text()
    assert first.returncode != 0, output[-3000:]
    assert re.search(rf"SLURM-job '{jobs[0]}' failed, SLURM status is: 'CANCELLED'", output), output[-3000:]
    deadline = time.monotonic() + 60  # SLURM's KillWait: SIGTERM, then SIGKILL 10 s later
    while _processes_with("runs/slurm_resume/") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_with("runs/slurm_resume/"), "training processes outlived scancel"
    finished = load_training_checkpoint(run_dir / "checkpoint.pt", "resnet18_cifar")["epoch"] + 1
    assert 1 <= finished < 3, f"the job was not cancelled mid-run ({finished} of 3 epochs finished)"
    kept = pd.read_csv(run_dir / "metrics.csv").iloc[:finished]
    assert list(kept["epoch"]) == list(range(1, finished + 1))
    assert not (work / target).exists()

    rerun = subprocess.run(command, cwd=work, capture_output=True, check=False, text=True, env=env, timeout=900)
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]
    rerun_jobs = _slurm_jobs(rerun.stdout + rerun.stderr)
    assert len(rerun_jobs) == 1 and rerun_jobs[0] != jobs[0]
    log = (work / "logs/slurm_resume/train/fashion_mnist/resnet18/seed0.log").read_text()
    for epoch in range(1, finished + 1):
        assert f"epoch {epoch}/3:" not in log, f"epoch {epoch} was trained again:\n{log[-2000:]}"
    assert "epoch 3/3:" in log
    metrics = pd.read_csv(work / target)
    assert list(metrics["epoch"]) == [1, 2, 3]
    assert (metrics["world_size"] == 2).all()
    pd.testing.assert_frame_equal(metrics.iloc[:finished].reset_index(drop=True), kept)  # kept as they were
    assert (work / f"logs/slurm/rule_train/fashion_mnist_resnet18_0/{rerun_jobs[0]}.log").exists()
