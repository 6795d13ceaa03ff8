"""Inference speed checks (pytest --benchmark-only): RMNet deploy vs its training form and vs the
paper's baseline of the same table row, and MobileNetV2 vs its converted MobileNetV1 form.

CPU benchmarks use small batches so the suite finishes in minutes on 2 cores; CUDA benchmarks use the
paper's batch of 128 and skip cleanly without a GPU. Compare within a group (--benchmark-group-by=group).
Write JSON under results/: --benchmark-json results/manual/benchmarks/<device>.json
"""

import pytest
import timm
import torch

import replication  # noqa: F401
from replication import rm

CUDA = torch.cuda.is_available()

# (benchmark group, model, form, input side): each group is one paper table row pair.
CASES = [
    ("table1-cifar: rmnet26x3_32 vs resnet34", "rmnet26x3_32_cifar", "deploy", 32),
    ("table1-cifar: rmnet26x3_32 vs resnet34", "rmnet26x3_32_cifar", "train", 32),
    ("table1-cifar: rmnet26x3_32 vs resnet34", "resnet34_cifar", "train", 32),
    ("table1-cifar: rmnet26x3_32 vs resnet34", "repvgg_a2_cifar", "deploy", 32),
    ("table2: mobilenetv2 -> v1", "mobilenetv2_rm_cifar", "train", 32),
    ("table2: mobilenetv2 -> v1", "mobilenetv2_rm_cifar", "deploy", 32),
    ("table2: mobilenetv2 -> v1", "mobilenetv1_cifar", "deploy", 32),
    ("table1-imagenet: rmnet41x4_8 vs resnet50", "rmnet41x4_8", "deploy", 224),
    ("table1-imagenet: rmnet41x4_8 vs resnet50", "resnet50", "train", 224),
]


def _model(name: str, form: str, device: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = timm.create_model(name).eval()
    return (rm.convert(model) if form == "deploy" else model).to(device)


@pytest.mark.parametrize("group,name,form,side", CASES, ids=[f"{c[1]}-{c[2]}" for c in CASES])
def test_cpu_inference(benchmark, group, name, form, side):
    batch = 16 if side == 32 else 2
    model = _model(name, form, "cpu")
    x = torch.randn(batch, 3, side, side)
    benchmark.group = f"cpu {group}, batch {batch}"
    benchmark.extra_info.update({"model": name, "form": form, "device": "cpu", "batch_size": batch,
                                 "input_size": side, "threads": torch.get_num_threads(), "dtype": "float32"})
    with torch.inference_mode():
        benchmark.pedantic(model, args=(x,), rounds=5, warmup_rounds=2, iterations=1)


@pytest.mark.skipif(not CUDA, reason="CUDA benchmarks need a GPU")
@pytest.mark.parametrize("group,name,form,side", CASES, ids=[f"{c[1]}-{c[2]}" for c in CASES])
def test_cuda_inference_paper_batch(benchmark, group, name, form, side):
    model = _model(name, form, "cuda")
    x = torch.randn(128, 3, side, side, device="cuda")
    torch.backends.cudnn.benchmark = True

    def step():
        model(x)
        torch.cuda.synchronize()  # time the kernels, not their launch

    benchmark.group = f"cuda {group}, batch 128"
    benchmark.extra_info.update({"model": name, "form": form, "device": torch.cuda.get_device_name(),
                                 "batch_size": 128, "input_size": side, "dtype": "float32"})
    with torch.inference_mode():
        benchmark.pedantic(step, rounds=50, warmup_rounds=50, iterations=1)
