"""A CPU heap that behaves the same from the first timed batch to the last.

glibc's malloc serves large blocks (a batch's activations) with ``mmap`` and returns them on ``free``,
then raises its mmap and trim thresholds as it sees large blocks come and go. Until the thresholds
settle, every forward pass page-faults its activations in afresh. Measured on this project's 2-core
CPU: RMNet 26x3_32 (deploy, batch 16, 32x32) ran at 95-120 images/s in a fresh process and at ~150 a
minute later in the same process, while ResNet 34, whose activations are smaller, stayed at ~107. So
a ratio depended on when in the process it was taken. Fixing both thresholds (``mallopt``) turns the
adjustment off, and the speeds hold from the start: 153-157 (RMNet deploy) against 109-110 (ResNet 34).

:func:`pin_cpu_allocator` does that once per process before timing; :func:`cpu_allocator` names the
state for the results rows. Where the process was started with glibc's own ``MALLOC_MMAP_THRESHOLD_``
or ``MALLOC_TRIM_THRESHOLD_`` (the adjustment is already off), or off glibc, nothing is changed.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["cpu_allocator", "pin_cpu_allocator"]

_M_TRIM_THRESHOLD = -1        # malloc.h
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20   # glibc's ceiling for the mmap threshold on 64-bit systems
TRIM_THRESHOLD = 2**31 - 1    # mallopt takes an int: keep freed heap memory instead of returning it
_pinned = False


def _set_by_environment() -> bool:
    """glibc's own variables fix the thresholds: MALLOC_*_THRESHOLD_, or their GLIBC_TUNABLES names."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return ("MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ
            or "glibc.malloc.mmap_threshold" in tunables or "glibc.malloc.trim_threshold" in tunables)


def pin_cpu_allocator() -> bool:
    """Fix glibc malloc's mmap and trim thresholds in this process; True if they are fixed now.

    Idempotent. Frees no memory and moves none: it only changes where later large allocations come from
    (the heap, reused, instead of fresh mmaps).
    """
    global _pinned
    if _pinned or _set_by_environment():
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success
    _pinned = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return _pinned


def cpu_allocator() -> str:
    """``glibc pinned`` (by :func:`pin_cpu_allocator`), ``glibc (environment)``, ``glibc dynamic`` or the
    libc's name: the results rows' ``cpu_allocator`` column."""
    if _set_by_environment():
        return "glibc (environment)"
    libc = platform.libc_ver()[0] or platform.system()
    if libc != "glibc":
        return libc
    return "glibc pinned" if _pinned else "glibc dynamic"
