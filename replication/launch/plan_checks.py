"""Plan-time checks of the workflow: what would fail hours into a run, said when the Snakefile is parsed
(``snakemake -n`` included), one message per problem.

- a dataset that is not where ``data.roots`` says (with how to get it: ``data.download: true`` fetches
  CIFAR with torchvision's downloader; ImageNet and Fashion-MNIST cannot be downloaded here);
- a job that asks for more GPUs or CPUs than the profile (``--resources gpu=N``, ``--cores``) or the
  node offers (Snakemake itself would quietly give it fewer: ``gpu=8`` runs with ``gpu=1``);
- a launcher whose process count does not divide the profile's GPUs (some GPUs would always sit idle).

Only the presence of the files is checked here (quick, no torch): the content (checksums, labels) is
checked by the data layer when the run starts (``onstart``). Standard library only: the Snakefile loads
this file by path, so the scheduler never imports torch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# What the data layer reads (replication/data/datasets.py, fashion_mnist.py; tests/launch checks they agree).
CIFAR_FILES = {
    "cifar10": ("cifar-10-batches-py", ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                                        "data_batch_5", "test_batch", "batches.meta")),
    "cifar100": ("cifar-100-python", ("train", "test", "meta")),
}
FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte")
DEFAULT_ROOTS = {"cifar10": "data", "cifar100": "data", "imagenet": "data/imagenet",
                 "fashion_mnist": "/usr/share/datasets/fashion-mnist"}


def launcher_processes(launcher: str | None) -> int:
    """Processes per training job: torchrun's ``--nproc_per_node`` (``--nproc-per-node``), else 1."""
    words = (launcher or "python").replace("=", " ").split()
    for flag, value in zip(words, words[1:]):
        if flag in ("--nproc_per_node", "--nproc-per-node") and value.isdigit():
            return int(value)
    return 1


def needed_datasets(config: Mapping[str, Any]) -> list[str]:
    return list(config.get("datasets", [])) + (["imagenet"] if config.get("imagenet") else [])


def dataset_problems(config: Mapping[str, Any], base: str | os.PathLike = ".") -> list[str]:
    """One message per dataset the config needs that is not on disk where ``data.roots`` says."""
    data = config.get("data", {}) or {}
    roots = data.get("roots", {}) or {}
    download = bool(data.get("download", False))
    problems = []
    for name in needed_datasets(config):
        root = Path(base) / Path(roots.get(name) or DEFAULT_ROOTS.get(name, "data"))
        key = f"data.roots.{name}" if name in roots else f"data.roots.{name} (unset: default {DEFAULT_ROOTS.get(name)})"
        if name in CIFAR_FILES:
            folder, files = CIFAR_FILES[name]
            missing = [file for file in files if not (root / folder / file).is_file()]
            if missing and not download:
                problems.append(
                    f"{key}: {name.upper()} not found in {root / folder} (missing {', '.join(missing[:3])}"
                    f"{' ...' if len(missing) > 3 else ''}). Put torchvision's python-format batches there, or set "
                    f"data.download: true to fetch it with torchvision's downloader when the run starts")
        elif name == "imagenet":
            missing = [split for split in ("train", "val") if not (root / split).is_dir()]
            if missing:
                problems.append(
                    f"{key}: ImageNet not found at {root} (no {' or '.join(s + '/' for s in missing)} folder). It "
                    "cannot be downloaded automatically: get ILSVRC-2012 from image-net.org and point "
                    "data.roots.imagenet at the folder holding train/<class>/*.JPEG and val/<class>/*.JPEG, or set "
                    "imagenet: false")
        elif name == "fashion_mnist":
            missing = [stem for stem in FASHION_FILES
                       if not (root / stem).is_file() and not (root / f"{stem}.gz").is_file()]
            if missing:
                problems.append(
                    f"{key}: Fashion-MNIST not found in {root} (missing {', '.join(missing)}[.gz]). Install "
                    "Debian's package (apt-get install dataset-fashion-mnist) or point data.roots.fashion_mnist "
                    "at the folder holding the IDX files")
    return problems


def node_cpu_count() -> int | None:
    """CPUs of the node the plan is for: ``RMNET_NODE_CPUS`` if set (planning for another machine, or one
    node of a cluster), else this machine's."""
    value = os.environ.get("RMNET_NODE_CPUS", "").strip()
    return int(value) if value.isdigit() else os.cpu_count()


def node_gpu_count() -> int | None:
    """GPUs of the node the plan is for: ``RMNET_NODE_GPUS`` if set, else ``CUDA_VISIBLE_DEVICES`` if set,
    else ``nvidia-smi -L``; None if unknown (then not checked)."""
    value = os.environ.get("RMNET_NODE_GPUS", "").strip()
    if value.isdigit():
        return int(value)
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return len([item for item in listed.split(",") if item.strip() and item.strip() != "-1"])
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return sum(line.startswith("GPU ") for line in result.stdout.splitlines()) if result.returncode == 0 else None


def _is_cuda(device: object) -> bool:
    return str(device or "").startswith("cuda")


def job_requests(config: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    """(rule, GPUs, CPUs) of the jobs that ask for the most: a training job (one GPU per process on CUDA, one
    CPU per process and per data-loading worker) and, on CUDA, the fine-tuning and timing jobs (one GPU)."""
    training = config.get("training", {}) or {}
    processes = launcher_processes(training.get("launcher"))
    cuda = _is_cuda(training.get("device"))
    cpus = processes * (1 + int(training.get("workers") or 0))
    requests = [("train", processes if cuda else 0, cpus)]
    if cuda:
        requests.append(("finetune", 1, 1))
    experiments = config.get("experiments", {}) or {}
    timing = {"throughput": (config.get("throughput", {}) or {}).get("device"),
              "ablation": ((config.get("ablation", {}) or {}).get("speed", {}) or {}).get("device"),
              "pruning": ((experiments.get("pruning", {}) or {}).get("speed", {}) or {}).get("device")}
    requests += [(rule, 1, 0) for rule, device in timing.items() if _is_cuda(device)]
    return requests


def resource_problems(config: Mapping[str, Any], *, cores: int | None, gpus: int | None, node_cpus: int | None,
                      node_gpus: int | None, cluster: bool = False) -> list[str]:
    """Jobs that ask for more than the profile (``cores``, the ``gpu`` resource) or the node offers, and a
    launcher whose processes do not divide the profile's GPUs. ``cluster``: jobs go to a scheduler (SLURM),
    so this machine's CPUs and GPUs are not the ones the jobs get (the node is checked only where
    ``RMNET_NODE_CPUS`` / ``RMNET_NODE_GPUS`` describe one), and ``cores`` is one node's."""
    training = config.get("training", {}) or {}
    launcher = training.get("launcher", "python")
    processes = launcher_processes(launcher)
    problems = []
    for rule, gpu_count, cpu_count in job_requests(config):
        if gpu_count:
            if gpus is not None and gpu_count > gpus:
                problems.append(
                    f"rule {rule} asks for {gpu_count} GPU(s) ({_why(rule, launcher, processes)}) but the profile "
                    f"offers gpu={gpus}: raise the profile's gpu resource (--resources gpu={gpu_count}) or lower the "
                    f"launcher's processes (Snakemake would otherwise run it with gpu={gpus})")
            node_known = not cluster or bool(os.environ.get("RMNET_NODE_GPUS"))
            if node_known and node_gpus is not None and gpu_count > node_gpus:
                problems.append(f"rule {rule} asks for {gpu_count} GPU(s) but this node has {node_gpus}")
        if cpu_count > 1:
            offered = [f"the profile gives {cores} cores (--cores)"] if cores is not None and cpu_count > cores else []
            node_known = not cluster or bool(os.environ.get("RMNET_NODE_CPUS"))
            if node_known and node_cpus is not None and cpu_count > node_cpus:
                offered.append(f"this node has {node_cpus} CPUs")
            if offered:
                workers = int(training.get("workers") or 0)
                problems.append(
                    f"rule {rule} asks for {cpu_count} CPUs ({processes} process(es) x (1 + {workers} data-loading "
                    f"workers)) but {' and '.join(offered)}: lower training.workers or the launcher's processes")
    if _is_cuda(training.get("device")) and gpus and 1 < processes <= gpus and gpus % processes:
        problems.append(f"training.launcher: {processes} processes per job do not divide the profile's {gpus} GPUs: "
                        f"{gpus % processes} GPU(s) would always sit idle; use a process count that divides {gpus}")
    return problems


def _why(rule: str, launcher: str, processes: int) -> str:
    if rule == "train" and processes > 1:
        return f"training.launcher '{launcher}': one GPU per process"
    return "its device is cuda"


def plan_problems(config: Mapping[str, Any], *, cores: int | None, gpus: int | None, cluster: bool = False,
                  base: str | os.PathLike = ".", datasets: bool = True) -> list[str]:
    """Every problem found, datasets first. ``cores`` / ``gpus``: what the profile offers (None: not limited)."""
    problems = dataset_problems(config, base) if datasets else []
    return problems + resource_problems(config, cores=cores, gpus=gpus, node_cpus=node_cpu_count(),
                                        node_gpus=node_gpu_count(), cluster=cluster)


def write_stand_ins(folder: str | os.PathLike) -> dict[str, Any]:
    """Empty files in every dataset's layout under ``folder``, and the config overlay that points
    ``data.roots`` at them: for a dry run that plans a profile on a machine without its data (CI). They
    pass the presence check only; a real run would stop at the data layer's content check."""
    root = Path(folder)
    for sub, files in CIFAR_FILES.values():
        (root / "cifar" / sub).mkdir(parents=True, exist_ok=True)
        for file in files:
            (root / "cifar" / sub / file).touch()
    for split in ("train", "val"):
        (root / "imagenet" / split).mkdir(parents=True, exist_ok=True)
    (root / "fashion-mnist").mkdir(parents=True, exist_ok=True)
    for stem in FASHION_FILES:
        (root / "fashion-mnist" / f"{stem}.gz").touch()
    roots = {"cifar10": root / "cifar", "cifar100": root / "cifar", "imagenet": root / "imagenet",
             "fashion_mnist": root / "fashion-mnist"}
    return {"data": {"roots": {name: str(path.resolve()) for name, path in roots.items()}}}


if __name__ == "__main__":
    import json
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "stand-ins":
        sys.exit("usage: python replication/launch/plan_checks.py stand-ins FOLDER  (prints a config overlay, JSON)")
    print(json.dumps(write_stand_ins(sys.argv[2]), indent=1))
