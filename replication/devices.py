"""Checking a device name before any work: one clear error for a typo or a device this machine lacks."""

from __future__ import annotations

import torch


def check_device(name: str) -> str:
    """``name`` unchanged if torch can run on it here (``cpu``, ``cuda``, ``cuda:N``, ``mps``); otherwise a
    ValueError naming the value and what is available."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"unknown device {name!r}: use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: CUDA is not available on this machine (use cpu)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {name!r}: this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1})")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {name!r}: MPS is not available on this machine (use cpu)")
    elif device.type != "cpu":
        raise ValueError(f"device {name!r}: the suite runs on cpu, cuda or mps")
    return name
