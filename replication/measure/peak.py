"""Peak compute of a device, for the roofline view: achieved MAC/s as a fraction of what is possible.

Datasheet peaks (dense, no sparsity) are used for known GPUs; anything else gets a measured peak: the
best rate of a large square matmul, labelled as such.
"""

from __future__ import annotations

import time

import torch

# device-name substring -> {dtype: peak FLOP/s}; NVIDIA datasheets, dense tensor-core figures for fp16/bf16.
DATASHEET_PEAK_FLOPS = {
    "V100": {"float32": 15.7e12, "float16": 125e12},
    "A100": {"float32": 19.5e12, "float16": 312e12, "bfloat16": 312e12},
    "H100": {"float32": 67e12, "float16": 989e12, "bfloat16": 989e12},
    "H200": {"float32": 67e12, "float16": 989e12, "bfloat16": 989e12},
}


def datasheet_peak(device_name: str, dtype: str) -> float | None:
    for key, peaks in DATASHEET_PEAK_FLOPS.items():
        if key in device_name:
            return peaks.get(dtype)
    return None


def measured_matmul_peak(device: str = "cpu", dtype: str = "float32", size: int = 2048, repeats: int = 5) -> float:
    """Best FLOP/s of ``size`` x ``size`` matmuls on ``device`` (synchronised on CUDA)."""
    torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    a = torch.randn(size, size, device=device, dtype=torch_dtype)
    b = torch.randn(size, size, device=device, dtype=torch_dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    a @ b
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def peak_flops(device: str, device_name: str, dtype: str) -> tuple[float, str]:
    """(peak FLOP/s, where it comes from: 'datasheet' or 'measured matmul')."""
    peak = datasheet_peak(device_name, dtype)
    if peak is not None:
        return peak, "datasheet"
    return measured_matmul_peak(device, dtype), "measured matmul"
