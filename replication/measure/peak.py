"""Peak compute and memory bandwidth of a device, for the roofline view.

Known GPUs get their data-sheet figures (dense, no sparsity) from ``devices.yaml``, the same specs the
cost model uses; anything else (a CPU, an unlisted GPU) gets a measured figure, labelled as such: the
best rate of a large square matmul for compute, the best rate of a large tensor copy for bandwidth.
"""

from __future__ import annotations

import time

import torch

from .cost_model import DTYPE_ALIASES, device_spec


def datasheet_peak(device_name: str, dtype: str) -> float | None:
    """Data-sheet FLOP/s of a GPU of ``devices.yaml`` in ``dtype`` (fp16 / bf16 on tensor cores), else None."""
    try:
        peak = device_spec(device_name).peak_flops.get(DTYPE_ALIASES.get(dtype, dtype))
    except ValueError:
        return None
    return float(peak) if peak is not None else None


def datasheet_bandwidth(device_name: str) -> float | None:
    try:
        return device_spec(device_name).bandwidth
    except ValueError:
        return None


def _sync(device: str):
    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def measured_matmul_peak(device: str = "cpu", dtype: str = "float32", size: int = 2048, repeats: int = 5,
                         budget_s: float = 5.0) -> float:
    """Best FLOP/s of ``size`` x ``size`` matmuls on ``device`` (synchronised on CUDA).

    The measurement is kept within about ``budget_s`` seconds: a small matmul is timed first, and the
    size is lowered where the full one would take longer (a CPU without native half-precision
    arithmetic runs a float16 matmul of 2048 at a few GFLOP/s: minutes, in silence, otherwise)."""
    torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    sync = _sync(device)

    def best_rate(n: int, times: int) -> tuple[float, float]:
        a = torch.randn(n, n, device=device, dtype=torch_dtype)
        b = torch.randn(n, n, device=device, dtype=torch_dtype)
        a @ b
        sync()
        best = float("inf")
        for _ in range(times):
            start = time.perf_counter()
            a @ b
            sync()
            best = min(best, time.perf_counter() - start)
        best = max(best, 1e-9)
        return 2 * n**3 / best, best

    first = probe = min(size, 256)
    rate, seconds = best_rate(probe, 2)
    while probe < size:  # the largest size whose repeats fit the budget, at the last size's speed
        larger = min(size, probe * 2)
        if seconds * (larger / probe) ** 3 * (repeats + 1) > budget_s:
            break
        probe = larger
        rate, seconds = best_rate(probe, 1)
    return rate if probe == first else best_rate(probe, repeats)[0]


def measured_copy_bandwidth(device: str = "cpu", megabytes: int = 128, repeats: int = 5) -> float:
    """Best bytes/s of copying a ``megabytes`` float32 tensor into another (read + write counted)."""
    source = torch.ones(megabytes * 2**20 // 4, device=device)
    target = torch.empty_like(source)
    sync = _sync(device)
    target.copy_(source)
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        target.copy_(source)
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * source.numel() * source.element_size() / best


def peak_flops(device: str, device_name: str, dtype: str) -> tuple[float, str]:
    """(peak FLOP/s, where it comes from: 'datasheet' or 'measured matmul')."""
    peak = datasheet_peak(device_name, dtype) if device.startswith("cuda") else None
    if peak is not None:
        return peak, "datasheet"
    return measured_matmul_peak(device, dtype), "measured matmul"


def memory_bandwidth(device: str, device_name: str) -> tuple[float, str]:
    """(bytes/s, where it comes from: 'datasheet' or 'measured copy')."""
    bandwidth = datasheet_bandwidth(device_name) if device.startswith("cuda") else None
    if bandwidth is not None:
        return bandwidth, "datasheet"
    return measured_copy_bandwidth(device), "measured copy"
