"""ONNX export of a deploy-form model, checked against PyTorch and timed in ONNX Runtime (CPU).

Plain networks are what deployment runtimes are built for; the same throughput protocol
(warm-up, timed batches, repeats) is applied so ONNX Runtime rows sit beside PyTorch rows in one CSV.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
from pathlib import Path

import torch
from torch import nn

from ..measure.throughput import ThroughputConfig, ThroughputResult, time_batches
from ..rm.file_io import write_atomic


class OnnxUnavailable(RuntimeError):
    """onnx / onnxruntime are not installed (``pip install 'rmnet-replication[deploy]'``)."""


def _import_onnxruntime():
    try:
        import onnxruntime  # an optional dependency (the deploy extra), loaded when ONNX Runtime is used
    except ImportError as error:
        raise OnnxUnavailable("onnxruntime is not installed; pip install 'rmnet-replication[deploy]'") from error
    return onnxruntime


def export(model: nn.Module, input_size: tuple[int, int, int], path: str | os.PathLike) -> Path:
    """Export ``model`` (float32, eval) to ``path`` with a dynamic batch dimension; written atomically."""
    model = copy.deepcopy(model).float().eval().cpu()  # .float() and .cpu() act in place: export a copy
    example = torch.randn(2, *input_size)

    def write(tmp: Path) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints progress lines
            torch.onnx.export(model, (example,), tmp, input_names=["input"], output_names=["output"],
                              dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True, verbose=False,
                              external_data=False)  # one self-contained file (all our models are < 2 GB)

    return write_atomic(path, write)


def session(path: str | os.PathLike, threads: int | None = None):
    ort = _import_onnxruntime()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def max_rel_error(model: nn.Module, path: str | os.PathLike, x: torch.Tensor) -> float:
    """max |torch(x) - onnxruntime(x)| / max |torch(x)| in float32."""
    with torch.inference_mode():
        expected = model.float().eval().cpu()(x.float())
    run = session(path)
    actual = torch.from_numpy(run.run(None, {run.get_inputs()[0].name: x.float().numpy()})[0])
    return ((expected - actual).abs().max() / expected.abs().max().clamp_min(1e-30)).item()


def export_and_check(model: nn.Module, input_size: tuple[int, int, int], path: str | os.PathLike,
                     tolerance: float = 1e-5) -> tuple[Path, float]:
    """Export, then compare ONNX Runtime with PyTorch on random inputs; raise if above ``tolerance``."""
    _import_onnxruntime()
    path = export(model, input_size, path)
    error = max_rel_error(model, path, torch.randn(4, *input_size, generator=torch.Generator().manual_seed(0)))
    if error > tolerance:
        raise AssertionError(f"ONNX Runtime output of {path} differs from PyTorch: relative error {error:.2e} "
                             f"> {tolerance:g}")
    return path, error


def measure_onnxruntime(path: str | os.PathLike, config: ThroughputConfig) -> ThroughputResult:
    """The throughput protocol of :func:`replication.measure.throughput.measure_throughput`, on ORT CPU."""
    run = session(path, threads=config.threads or torch.get_num_threads())
    name = run.get_inputs()[0].name
    feed = {name: torch.randn(config.batch_size, *config.input_size).numpy()}
    return time_batches(lambda: run.run(None, feed), config)  # ORT's CPU run is synchronous: no sync
