"""Plan-time checks: missing datasets, jobs larger than the profile or node, a launcher that does not
divide the GPUs; each a message of its own. (The Snakefile runs them at parse time: tests/workflow.)"""

from pathlib import Path

import pytest

from replication.data import fashion_mnist
from replication.data.datasets import _CIFAR10, _CIFAR100
from replication.launch import plan_checks
from replication.launch.plan_checks import (
    CIFAR_FILES,
    FASHION_FILES,
    dataset_problems,
    launcher_processes,
    resource_problems,
)


def _config(**training):
    return {"datasets": ["cifar10"], "imagenet": False, "data": {"roots": {}, "download": False},
            "training": {"device": "cuda", "workers": 0, "launcher": "python", **training},
            "throughput": {"device": "cuda"}, "ablation": {"speed": {"device": "cuda"}},
            "experiments": {"pruning": {"speed": {"device": "cuda"}}}}


def test_the_file_names_are_the_data_layers():
    for name, cls in (("cifar10", _CIFAR10), ("cifar100", _CIFAR100)):
        folder, files = CIFAR_FILES[name]
        assert folder == cls.base_folder
        assert set(files) == {n for n, _ in cls.train_list + cls.test_list} | {cls.meta["filename"]}
    assert set(FASHION_FILES) == {stem for pair in fashion_mnist.FILES.values() for stem in pair}
    assert plan_checks.DEFAULT_ROOTS["fashion_mnist"] == str(fashion_mnist.DEFAULT_ROOT)


def test_missing_datasets_are_named_with_how_to_get_them(tmp_path):
    config = {"datasets": ["cifar10", "cifar100"], "imagenet": True,
              "data": {"roots": {"cifar10": str(tmp_path / "c"), "imagenet": str(tmp_path / "in")}}}
    problems = dataset_problems(config)
    assert len(problems) == 3
    assert "data.roots.cifar10: CIFAR10 not found" in problems[0] and "data.download: true" in problems[0]
    assert "data.roots.cifar100 (unset: default data)" in problems[1]
    assert "ImageNet not found" in problems[2] and "train/ or val/" in problems[2]
    # with download, CIFAR is fetched when the run starts; ImageNet cannot be
    config["data"]["download"] = True
    assert [p for p in dataset_problems(config) if "CIFAR" in p] == []


def test_present_datasets_pass(tmp_path):
    folder, files = CIFAR_FILES["cifar10"]
    (tmp_path / folder).mkdir()
    for name in files:
        (tmp_path / folder / name).write_bytes(b"")
    for split in ("train", "val"):
        (tmp_path / "imagenet" / split).mkdir(parents=True)
    config = {"datasets": ["cifar10"], "imagenet": True,
              "data": {"roots": {"cifar10": str(tmp_path), "imagenet": str(tmp_path / "imagenet")}}}
    assert dataset_problems(config) == []


@pytest.mark.parametrize("launcher, processes", [("python", 1), ("torchrun --nproc_per_node 4", 4),
                                                 ("torchrun --nproc-per-node=8 --nnodes 1", 8)])
def test_launcher_processes(launcher, processes):
    assert launcher_processes(launcher) == processes


def test_the_issues_example_torchrun_8_against_gpu_1_and_16_cores():
    config = _config(launcher="torchrun --nproc_per_node 8", workers=8)
    problems = resource_problems(config, cores=16, gpus=1, node_cpus=16, node_gpus=8)
    assert any(p.startswith("rule train asks for 8 GPU(s)") and "gpu=1" in p for p in problems)
    assert any(p.startswith("rule train asks for 72 CPUs") and "16 cores" in p and "16 CPUs" in p for p in problems)
    assert len(problems) == 2  # not also "does not divide": asking for more than the pool says it


def test_a_launcher_that_does_not_divide_the_gpus():
    problems = resource_problems(_config(launcher="torchrun --nproc_per_node 3"), cores=64, gpus=8, node_cpus=64,
                                 node_gpus=8)
    assert problems == ["training.launcher: 3 processes per job do not divide the profile's 8 GPUs: 2 GPU(s) "
                        "would always sit idle; use a process count that divides 8"]
    assert resource_problems(_config(launcher="torchrun --nproc_per_node 4"), cores=64, gpus=8, node_cpus=64,
                             node_gpus=8) == []


def test_a_job_larger_than_the_node():
    problems = resource_problems(_config(launcher="torchrun --nproc_per_node 4"), cores=None, gpus=None,
                                 node_cpus=64, node_gpus=2)
    assert problems == ["rule train asks for 4 GPU(s) but this node has 2"]


def test_on_a_cluster_this_machine_is_not_the_node(monkeypatch):
    config = _config(launcher="torchrun --nproc_per_node 4", workers=3)
    monkeypatch.delenv("RMNET_NODE_CPUS", raising=False)
    monkeypatch.delenv("RMNET_NODE_GPUS", raising=False)
    assert resource_problems(config, cores=None, gpus=None, node_cpus=2, node_gpus=0, cluster=True) == []
    monkeypatch.setenv("RMNET_NODE_GPUS", "2")
    assert resource_problems(config, cores=None, gpus=None, node_cpus=2, node_gpus=2, cluster=True) == [
        "rule train asks for 4 GPU(s) but this node has 2"]


def test_cpu_configs_ask_for_no_gpus():
    config = _config(device="cpu")
    config["throughput"] = config["ablation"]["speed"] = config["experiments"]["pruning"]["speed"] = {"device": "cpu"}
    assert resource_problems(config, cores=2, gpus=0, node_cpus=2, node_gpus=0) == []


def test_node_overrides_for_planning_elsewhere(monkeypatch):
    monkeypatch.setenv("RMNET_NODE_CPUS", "64")
    monkeypatch.setenv("RMNET_NODE_GPUS", "8")
    assert plan_checks.node_cpu_count() == 64 and plan_checks.node_gpu_count() == 8
    monkeypatch.delenv("RMNET_NODE_GPUS")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    assert plan_checks.node_gpu_count() == 3


def test_plan_problems_lists_datasets_first(tmp_path, monkeypatch):
    monkeypatch.setenv("RMNET_NODE_CPUS", "4")
    monkeypatch.setenv("RMNET_NODE_GPUS", "1")
    config = _config(launcher="torchrun --nproc_per_node 2")
    config["data"]["roots"] = {"cifar10": str(Path(tmp_path) / "none")}
    problems = plan_checks.plan_problems(config, cores=4, gpus=1)
    assert problems[0].startswith("data.roots.cifar10") and len(problems) == 3


def test_stand_ins_satisfy_the_presence_check(tmp_path):
    overlay = plan_checks.write_stand_ins(tmp_path / "stand-ins")
    config = {"datasets": ["cifar10", "cifar100", "fashion_mnist"], "imagenet": True, "data": overlay["data"]}
    assert dataset_problems(config) == []
