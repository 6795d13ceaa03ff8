"""Inference throughput with the paper's protocol: batch 128, 50 warm-up batches, 50 timed batches.

The timed region is bracketed by ``torch.cuda.synchronize()`` on CUDA (kernels are asynchronous, so a
wall clock without it measures launch time, not compute) and by nothing on the CPU. Each measurement is
repeated and reported as median and spread. Every result carries what affects it: device, versions,
dtype, memory format, compile, batch, input size, threads.

The batch size is never changed behind the caller's back (timm's benchmark halves it on OOM): an
out-of-memory batch raises :class:`ThroughputError` with ``out_of_memory=True``, and the experiments
record it as a row with ``status="oom"`` and the batch that was asked for. Out of memory means any of:
CUDA's ``OutOfMemoryError``, the CPU allocator's "can't allocate memory", Python's ``MemoryError``, or an
input batch larger than the memory the device has free (checked before allocating it, so that the
kernel's OOM killer never ends the process without a row).

Before timing, glibc malloc's thresholds are fixed (``pin_allocator``, see
:mod:`replication.measure.allocator`): left to adjust themselves, they made one model's CPU speed
drift by half within a process. Rows record the state in ``cpu_allocator``.

Clocks (``ThroughputConfig.clock``, the ``clock`` column of every row): ``wall`` (``time.perf_counter``,
the paper's protocol and the only clock for GPUs) or ``thread`` (``time.thread_time``: the CPU time of
the timing thread alone, with torch's intra-op threads set to 1 so that all the work runs on that
thread). A thread clock does not advance while another process holds the core, so single-threaded CPU
timings survive a busy machine far better than a wall clock; cache and memory-bandwidth contention
still show. ``statistic`` says how repeats (and paired rounds) are summarised: ``median`` (the default)
or ``min``, the fastest, which noise can only ever slow down.
"""

from __future__ import annotations

import contextlib
import copy
import math
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import nn

from .allocator import cpu_allocator, pin_cpu_allocator

PAPER_BATCH_SIZE = 128
PAPER_WARMUP = 50
PAPER_ITERS = 50
# The precisions a model is timed in (float32, or autocast to float16 / bfloat16).
TIMING_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
CLOCKS = ("wall", "thread")         # time.perf_counter, time.thread_time
STATISTICS = ("median", "min")


class ThroughputError(RuntimeError):
    """The model cannot be measured with these settings (bad input size, out of memory)."""

    def __init__(self, message: str, *, out_of_memory: bool = False) -> None:
        super().__init__(message)
        self.out_of_memory = out_of_memory


@dataclass(frozen=True)
class ThroughputConfig:
    """How to measure. Defaults are the paper's protocol (section 4) in float32 on the default device."""

    batch_size: int = PAPER_BATCH_SIZE
    input_size: tuple[int, int, int] = (3, 224, 224)
    warmup: int = PAPER_WARMUP
    iters: int = PAPER_ITERS
    repeats: int = 3
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    dtype: str = "float32"          # float16 / bfloat16 run under autocast
    channels_last: bool = False
    compile: bool = False
    compile_backend: str = "inductor"  # torch.compile backend; "eager" checks the code path without codegen
    threads: int | None = None      # CPU threads; None keeps torch's setting
    pin_allocator: bool = True      # fix glibc malloc's thresholds before timing (measure/allocator.py)
    clock: str = "wall"             # wall (perf_counter) or thread (thread_time, CPU only, one torch thread)
    statistic: str = "median"       # how repeats / paired rounds are summarised: median or min
    interleave: int = 1             # paired timing: each side's iters split into this many alternating blocks

    def __post_init__(self) -> None:
        if self.dtype not in TIMING_DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(TIMING_DTYPES)}, got {self.dtype!r}")
        if self.clock not in CLOCKS:
            raise ValueError(f"clock must be one of {', '.join(CLOCKS)}, got {self.clock!r}")
        if self.statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}, got {self.statistic!r}")
        if self.clock == "thread":
            if not self.device.startswith("cpu"):
                raise ValueError(f"clock 'thread' times the CPU work of one thread; {self.device} kernels run "
                                 "elsewhere: use clock 'wall' (synchronised) on a GPU")
            if self.threads not in (None, 1):
                raise ValueError(f"clock 'thread' needs threads=1 (all the work on the timing thread), "
                                 f"got threads={self.threads}")
            object.__setattr__(self, "threads", 1)
        if self.interleave < 1 or self.iters % self.interleave:
            raise ValueError(f"interleave must be >= 1 and divide iters ({self.iters}), got {self.interleave}")
        for name in ("batch_size", "iters", "repeats"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")


@dataclass
class ThroughputResult:
    images_per_sec: float                       # median over repeats
    images_per_sec_min: float
    images_per_sec_max: float
    ms_per_batch: float                         # median over repeats
    repeat_images_per_sec: list[float] = field(default_factory=list)
    timed_batches: int = 0                      # batches inside the timed regions, all repeats


def device_name(device: str) -> str:
    """GPU name, or the CPU model name (from /proc/cpuinfo on Linux)."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def environment(config: ThroughputConfig) -> dict[str, object]:
    """The context columns of a result row. With ``config.pin_allocator`` this pins the CPU allocator
    first, as every measurement under ``config`` does, so a row built before its measurement is right."""
    if config.pin_allocator:
        pin_cpu_allocator()
    cuda = config.device.startswith("cuda")
    return {
        "device": config.device, "device_name": device_name(config.device),
        "torch_version": torch.__version__, "cuda_version": torch.version.cuda if cuda else "",
        "cudnn_version": torch.backends.cudnn.version() if cuda else "", "dtype": config.dtype,
        "channels_last": config.channels_last, "compile": config.compile,
        "compile_backend": config.compile_backend if config.compile else "", "batch_size": config.batch_size,
        "input_size": "x".join(map(str, config.input_size)), "threads": torch.get_num_threads(),
        "warmup": config.warmup, "iters": config.iters, "repeats": config.repeats,
        "cpu_allocator": cpu_allocator(), "clock": config.clock, "statistic": config.statistic,
    }


def clock_of(config: ThroughputConfig) -> Callable[[], float]:
    """The timer ``config.clock`` names: ``time.perf_counter`` (wall) or ``time.thread_time`` (thread)."""
    return time.thread_time if config.clock == "thread" else time.perf_counter


def summarise(values: list[float], statistic: str) -> float:
    """The median of ``values``, or their minimum (``statistic="min"``)."""
    return min(values) if statistic == "min" else statistics.median(values)


_OOM_TYPES = (getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError), MemoryError)
# What the allocators say: CUDA ("CUDA out of memory"), the CPU ("DefaultCPUAllocator: can't allocate
# memory ... Error code 12 (Cannot allocate memory)"), MPS ("MPS backend out of memory").
_OOM_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory", "defaultcpuallocator")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` says that an allocation failed, on any device."""
    return isinstance(error, _OOM_TYPES) or any(text in str(error).lower() for text in _OOM_MESSAGES)


def synchronizer(device: str) -> Callable[[], None]:
    """A function that waits for the device's queued kernels (CUDA); a no-op on the CPU, which is synchronous."""
    if device.startswith("cuda"):
        return lambda: torch.cuda.synchronize(torch.device(device))
    return lambda: None


def available_memory(device: str) -> int | None:
    """Bytes the device can still allocate (CUDA: free memory; CPU: MemAvailable), None if unknown."""
    if device.startswith("cuda"):
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    if device == "cpu":
        try:
            with open("/proc/meminfo") as handle:
                for line in handle:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
    return None


def out_of_memory_error(name: str, config: ThroughputConfig, detail: str = "") -> ThroughputError:
    extra = f" ({detail})" if detail else ""
    return ThroughputError(f"{name}: batch {config.batch_size} of {config.input_size} does not fit in {config.device} "
                           f"memory{extra}; the batch size is not changed automatically", out_of_memory=True)


def _release(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def prepare(model: nn.Module, config: ThroughputConfig, name: str = "model") -> tuple[nn.Module, torch.Tensor]:
    """A copy of the model in eval mode on the device (memory format, compile applied) and one batch.

    The caller's model is left as it is (device, mode and memory format). An input batch larger than
    the device's free memory is refused before it is allocated (:class:`ThroughputError`, out of memory).
    """
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    if config.pin_allocator:
        pin_cpu_allocator()  # before the copy and the batch are allocated
    if config.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    needed = config.batch_size * math.prod(config.input_size) * torch.finfo(torch.float32).bits // 8
    free = available_memory(config.device)
    if free is not None and needed > free:
        raise out_of_memory_error(name, config, f"the input batch alone needs {needed / 2**30:.3g} GiB, "
                                                f"{free / 2**30:.3g} GiB is available")
    model = copy.deepcopy(model).eval().to(config.device)
    x = torch.randn(config.batch_size, *config.input_size, device=config.device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if config.compile:
        model = cast(nn.Module, torch.compile(model, backend=config.compile_backend))
    return model, x


def autocast(config: ThroughputConfig) -> contextlib.AbstractContextManager:
    """Autocast to ``config.dtype`` on the config's device type (CUDA or CPU); nothing for float32."""
    if config.dtype == "float32":
        return contextlib.nullcontext()
    device_type = "cuda" if config.device.startswith("cuda") else "cpu"
    return torch.autocast(device_type=device_type, dtype=TIMING_DTYPES[config.dtype])


def check_input(model: nn.Module, x: torch.Tensor, name: str) -> None:
    """One forward pass before any timing: an input the model cannot take is a :class:`ThroughputError`
    naming the model and the shape (out-of-memory errors pass through for the caller to report)."""
    try:
        model(x)
    except RuntimeError as error:
        if is_out_of_memory(error):
            raise
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ThroughputError(f"{name} cannot take input {tuple(x.shape)}: {first[:300]}") from None


def time_batches(run_batch: Callable[[], object], config: ThroughputConfig, *,
                 sync: Callable[[], None] = lambda: None,
                 timer: Callable[[], float] | None = None) -> ThroughputResult:
    """The timing protocol, for any runtime: ``run_batch()`` runs one batch of ``config.batch_size``.

    Per repeat: ``warmup`` untimed batches, then ``iters`` batches in one timed region, bracketed by
    ``sync()`` (which waits for queued device work; the default no-op suits synchronous runtimes).
    Images per second are the median over repeats (the fastest with ``config.statistic="min"``), with
    the slowest and fastest repeat beside it. ``timer`` defaults to ``config.clock``'s.
    """
    timer = timer or clock_of(config)
    per_repeat: list[float] = []
    timed = 0
    for _ in range(config.repeats):
        for _ in range(config.warmup):
            run_batch()
        sync()
        start = timer()
        for _ in range(config.iters):
            run_batch()
            timed += 1
        sync()
        per_repeat.append(timer() - start)
    rates = [config.batch_size * config.iters / seconds for seconds in per_repeat]
    seconds = summarise(per_repeat, config.statistic)
    return ThroughputResult(images_per_sec=config.batch_size * config.iters / seconds
                            if config.statistic == "min" else statistics.median(rates),
                            images_per_sec_min=min(rates), images_per_sec_max=max(rates),
                            ms_per_batch=1000 * seconds / config.iters,
                            repeat_images_per_sec=rates, timed_batches=timed)


def measure_throughput(model: nn.Module, config: ThroughputConfig = ThroughputConfig(), *,
                       timer: Callable[[], float] | None = None, name: str = "model") -> ThroughputResult:
    """Images per second of ``model`` on batches of ``config.batch_size`` inputs of ``config.input_size``.

    Per repeat: ``warmup`` untimed batches, then ``iters`` batches in one timed region (synchronised on
    CUDA). Raises :class:`ThroughputError` if the input size does not fit the model or memory runs out.
    """
    try:
        model, x = prepare(model, config, name)
        with torch.inference_mode(), autocast(config):
            check_input(model, x, name)
            return time_batches(lambda: model(x), config, sync=synchronizer(config.device), timer=timer)
    except (RuntimeError, MemoryError) as error:
        if isinstance(error, ThroughputError) or not is_out_of_memory(error):
            raise
        _release(config.device)
        raise out_of_memory_error(name, config) from None


def result_row(model_name: str, form: str, config: ThroughputConfig, result: ThroughputResult | None, *,
               runtime: str = "pytorch", status: str = "ok", macs: int | None = None,
               **context: object) -> dict[str, object]:
    """One CSV row: what was measured, how, and the numbers (NaN where it did not run)."""
    nan = float("nan")
    row: dict[str, object] = {"model": model_name, "form": form, "runtime": runtime, **environment(config),
                              **context, "status": status}
    row.update({
        "images_per_sec": result.images_per_sec if result else nan,
        "images_per_sec_min": result.images_per_sec_min if result else nan,
        "images_per_sec_max": result.images_per_sec_max if result else nan,
        "ms_per_batch": result.ms_per_batch if result else nan,
        "macs_per_image": macs if macs is not None else nan,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    return row
