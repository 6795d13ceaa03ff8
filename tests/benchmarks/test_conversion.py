"""Conversion time and memory (pytest --benchmark-only). Timings are reported, never asserted."""

import resource
import sys

import pytest
import torch
import torchvision

from replication import rm
from replication.measure import count_params

MODELS = ["resnet18", "resnet50", "resnet152", "resnext50_32x4d", "mobilenet_v2"]


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


@pytest.mark.parametrize("name", MODELS)
def test_convert_time(benchmark, name):
    model = torchvision.models.get_model(name, weights=None).eval()
    plain = benchmark.pedantic(rm.convert, args=(model,), rounds=3, warmup_rounds=1, iterations=1)
    benchmark.extra_info.update({
        "model": f"torchvision:{name}", "dtype": "float32", "threads": torch.get_num_threads(),
        "params_before": count_params(model), "params_after": count_params(plain),
        "plain_bytes": sum(p.numel() * p.element_size() for p in plain.parameters()),
        "process_peak_rss_bytes": _peak_rss_bytes(),
    })
    assert isinstance(plain, torch.nn.Sequential)
