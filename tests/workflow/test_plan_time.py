"""Plan-time checks in the workflow itself: a dry run fails with one message per problem (missing data,
jobs larger than the profile, a launcher that does not divide the GPUs), and GPU jobs run through the
slot allocator locally and ask SLURM for gres=gpu:k."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("snakemake")
pytestmark = pytest.mark.slow  # each dry run parses the workflow and checks its config (seconds each)


def _dry_run(tmp_path, *args, overlay=None, base="config/paper.yaml", **node):
    files = [base]
    if overlay is not None:
        path = tmp_path / "overlay.yaml"
        path.write_text(yaml.safe_dump(overlay))
        files.append(str(path))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("RMNET_NODE_", "SLURM_"))},
           **{f"RMNET_NODE_{key.upper()}": str(value) for key, value in node.items()}}
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", *args, "--configfile", *files], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=env)


def _stand_ins(tmp_path):
    return json.loads(subprocess.run([sys.executable, str(ROOT / "replication/launch/plan_checks.py"), "stand-ins",
                                      str(tmp_path / "data")], capture_output=True, text=True, check=True).stdout)


def test_paper_plan_without_data_names_each_missing_dataset_and_how_to_get_it(tmp_path):
    overlay = {"data": {"roots": {"cifar10": str(tmp_path / "none"), "cifar100": str(tmp_path / "none"),
                                  "imagenet": str(tmp_path / "none")}}}
    result = _dry_run(tmp_path, "--workflow-profile", "profiles/paper", overlay=overlay, cpus=64, gpus=8)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "3 problem(s)" in output
    assert "data.roots.cifar10: CIFAR10 not found" in output and "data.download: true" in output
    assert "data.roots.imagenet: ImageNet not found" in output


def test_torchrun_8_against_the_paper_profile_fails_the_dry_run(tmp_path):
    overlay = {**_stand_ins(tmp_path),
               "training": {**yaml.safe_load((ROOT / "config/paper.yaml").read_text())["training"],
                            "launcher": "torchrun --nproc_per_node 8"}}
    result = _dry_run(tmp_path, "--workflow-profile", "profiles/paper", overlay=overlay, cpus=16, gpus=8)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "rule train asks for 8 GPU(s) (training.launcher 'torchrun --nproc_per_node 8': one GPU per process) " \
           "but the profile offers gpu=1" in output
    assert "rule train asks for 72 CPUs (8 process(es) x (1 + 8 data-loading workers)) but the profile gives " \
           "16 cores (--cores) and this node has 16 CPUs" in output


def test_gpu_jobs_run_through_the_slot_allocator_and_ask_slurm_for_their_gpus(tmp_path):
    # the embedded config's small plan, moved to CUDA with a 2-process launcher
    training = {**yaml.safe_load((ROOT / "config/config.yaml").read_text())["training"], "device": "cuda",
                "launcher": "torchrun --nproc_per_node 2", "workers": 2}
    overlay = {"training": training, "throughput": {**yaml.safe_load((ROOT / "config/config.yaml").read_text())[
        "throughput"], "device": "cuda"}}
    local = _dry_run(tmp_path, "-p", "--workflow-profile", "profiles/paper", "--resources", "gpu=4", "timing=1",
                     overlay=overlay, base="config/config.yaml", cpus=16, gpus=4)
    assert local.returncode == 0, local.stderr[-3000:]
    assert "gpu_slots.py --slots 4 --need 2 -- " in local.stdout and "torch.distributed.run --nproc_per_node 2" \
           in local.stdout
    assert "gpu_slots.py --slots 4 --need 1 -- " in local.stdout  # fine-tuning and timing: one GPU each
    pytest.importorskip("snakemake_executor_plugin_slurm")
    slurm = _dry_run(tmp_path, "--executor", "slurm", "--jobs", "8", "--cores", "16", overlay=overlay,
                     base="config/config.yaml")
    assert slurm.returncode == 0, slurm.stderr[-3000:]
    assert "gres=gpu:2" in slurm.stdout and "cpus_per_task=6" in slurm.stdout
    assert "gpu=" not in slurm.stdout.replace("gres=gpu:", "")  # no local pool resource on a cluster
