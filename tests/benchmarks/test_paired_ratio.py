"""The paired CPU speed ratio of RMNet 26x3_32 (deploy form) over ResNet 34, CIFAR input, batch 16
(pytest --benchmark-only), in this process and pooled over 5 fresh worker processes (pyperf's way).
The ratio, its bootstrap 95 % CI, rounds, workers, load and busy flag go into the benchmark's
``extra_info`` (pytest-benchmark's own statistics time the whole pair measurement).

``scripts/speed-stability.sh`` runs the worker-process benchmark three times and prints the three
ratios: the goal is that they agree within +-3 % on a quiet 2-core machine.
"""

import functools

import torch

import replication  # noqa: F401
from replication import rm, zoo
from replication.experiments.speed_pairs import build_side
from replication.measure.paired import PairedRatio, measure_pair, measure_pair_in_workers
from replication.measure.throughput import ThroughputConfig, device_name

# 5 timed batches per block keep a block near 1-2 s on 2 cores; up to 32 rounds, at most 10 minutes.
CONFIG = ThroughputConfig(batch_size=16, input_size=(3, 32, 32), warmup=3, iters=5, repeats=1, device="cpu")


def test_cpu_paired_ratio_rmnet26x3_32_deploy_over_resnet34(benchmark):
    torch.manual_seed(0)
    rmnet = rm.convert(zoo.create("rmnet26x3_32_cifar", num_classes=10).eval())
    resnet = zoo.create("resnet34_cifar", num_classes=10).eval()
    benchmark.group = "paired ratio: rmnet26x3_32 deploy / resnet34, CIFAR, batch 16, cpu"
    pair = benchmark.pedantic(measure_pair, args=(rmnet, resnet, CONFIG),
                              kwargs={"rounds": 8, "max_rounds": 32, "time_cap_s": 600.0,
                                      "names": ("rmnet26x3_32_cifar (deploy)", "resnet34_cifar (train)")},
                              rounds=1, iterations=1, warmup_rounds=0)
    _record(benchmark, pair)
    assert pair.ci_low <= pair.ratio <= pair.ci_high and pair.rounds >= 8


def test_cpu_paired_ratio_rmnet26x3_32_deploy_over_resnet34_in_worker_processes(benchmark):
    benchmark.group = "paired ratio: rmnet26x3_32 deploy / resnet34, CIFAR, batch 16, cpu, 5 workers"
    build_a = functools.partial(build_side, {"model": "rmnet26x3_32_cifar", "form": "deploy"}, 32)
    build_b = functools.partial(build_side, {"model": "resnet34_cifar", "form": "train"}, 32)
    pair = benchmark.pedantic(measure_pair_in_workers, args=(build_a, build_b, CONFIG),
                              kwargs={"workers": 5, "rounds": 8,
                                      "names": ("rmnet26x3_32_cifar (deploy)", "resnet34_cifar (train)")},
                              rounds=1, iterations=1, warmup_rounds=0)
    _record(benchmark, pair)
    assert pair.workers == 5 and pair.rounds == 40 and pair.ci_low <= pair.ratio <= pair.ci_high


def _record(benchmark, pair: PairedRatio) -> None:
    benchmark.extra_info.update({
        **pair.as_row(pair_id="rmnet26x3_32_cifar:deploy/resnet34_cifar:train"),
        "images_per_sec_a": pair.images_per_sec_a, "images_per_sec_b": pair.images_per_sec_b,
        "device_name": device_name("cpu"), "threads": torch.get_num_threads(), "batch_size": CONFIG.batch_size,
        "iters_per_block": CONFIG.iters})
