"""Writing a converted plain network in the format its file name asks for, and checking the file.

=============== ============================================================ =====================================
suffix          what is written                                              read back with
=============== ============================================================ =====================================
``.pt``         the suite's format: layer spec + state_dict (``torch.save``) ``replication.rm.plain_io.load_plain``
``.safetensors`` the weights; the layer spec as JSON in the file's metadata  ``load_plain`` (or safetensors + JSON)
``.pt2``        ``torch.export`` program, dynamic batch dimension            ``torch.export.load(path).module()``
``.onnx``       ONNX (dynamo exporter, opset of torch's), dynamic batch      ONNX Runtime
=============== ============================================================ =====================================

:func:`write_checked` writes to a temporary file beside the target, loads it back with the reader of
its format, runs it on the check input and compares it with the *source* model (the residual network,
in the check's precision); the file replaces the target only if the error is within the tolerance.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..rm import max_error
from ..rm.file_io import write_atomic
from ..rm.plain_io import load_plain, save_plain

FORMATS = {".pt": "rmnet plain (torch.save: layer spec + state_dict)",
           ".safetensors": "safetensors (weights; layer spec in the metadata)",
           ".pt2": "torch.export program",
           ".onnx": "ONNX"}


class UnknownFormatError(ValueError):
    """A file name whose suffix names no format this suite writes."""


class CheckFailedError(RuntimeError):
    """The written file, loaded back, does not compute what the source model computes."""


def format_of(path: str | os.PathLike) -> str:
    """The suffix of ``path`` if it names a supported format, else :class:`UnknownFormatError`."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        known = ", ".join(f"{s} ({d})" for s, d in FORMATS.items())
        raise UnknownFormatError(f"cannot tell the format of {path} from its suffix {suffix or '(none)'!r}: "
                                 f"use one of {known}")
    return suffix


def tolerance_for(dtype: torch.dtype) -> float:
    """Relative error a file in ``dtype`` may have against the source model: float64 rounding, or float32's
    (a deep network in float32 differs from float64 by about 1e-6 of its output scale)."""
    return 1e-10 if dtype == torch.float64 else 1e-4


@dataclass
class Written:
    path: Path
    suffix: str
    bytes: int
    dtype: torch.dtype
    loader: str
    error: dict[str, float]  # max_error of the loaded file against the source model

    @property
    def description(self) -> str:
        return FORMATS[self.suffix]


def _outputs(result: object) -> object:
    """A loaded program's outputs as tensors or a list of them (ONNX Runtime gives numpy arrays)."""
    if isinstance(result, (list, tuple)):
        items = [_outputs(item) for item in result]
        return items[0] if len(items) == 1 and not isinstance(result, list) else items
    return result if isinstance(result, torch.Tensor) else torch.from_numpy(result)


class _Loaded(nn.Module):
    """A loaded file as a module taking the check input (cast to the file's dtype) and returning outputs in
    the reference's dtype, so :func:`replication.rm.max_error` compares it with the source model."""

    def __init__(self, run: Callable[[torch.Tensor], object], dtype: torch.dtype, features: bool) -> None:
        super().__init__()
        # a lambda, not the module itself: an exported program's module() refuses .eval(), which max_error calls
        self.run = lambda x: run(x)
        self.dtype, self.features = dtype, features

    def forward(self, x: torch.Tensor) -> object:
        out = _outputs(self.run(x.to(self.dtype)))
        if self.features and isinstance(out, torch.Tensor):
            out = [out]
        if not self.features and isinstance(out, list) and len(out) == 1:  # ONNX Runtime: a list of outputs
            out = out[0]
        if isinstance(out, list):
            return [o.to(x.dtype) for o in out]
        return out.to(x.dtype)  # type: ignore[attr-defined]


def _export_program(model: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    batch = torch.export.Dim("batch", min=1)
    return torch.export.export(model, (example,), dynamic_shapes=({0: batch},))


def _write_onnx(model: nn.Module, example: torch.Tensor, tmp: Path) -> None:
    with torch.no_grad():
        outputs = model(example)
    count = len(outputs) if isinstance(outputs, (list, tuple)) else 1
    names = ["output"] if count == 1 else [f"feature{i}" for i in range(count)]
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints progress lines
        torch.onnx.export(model, (example,), tmp, input_names=["input"], output_names=names,
                          dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True, verbose=False,
                          external_data=False)


def _loader(suffix: str, tmp: Path, dtype: torch.dtype) -> tuple[str, Callable[[torch.Tensor], object]]:
    if suffix in (".pt", ".safetensors"):
        return "replication.rm.plain_io.load_plain", load_plain(tmp)
    if suffix == ".pt2":
        with open(tmp, "rb") as handle:
            program = torch.export.load(handle)
        return "torch.export.load", program.module()
    from .onnx import session  # onnxruntime: the deploy extra

    run = session(tmp)
    name = run.get_inputs()[0].name
    return "ONNX Runtime (CPU)", lambda x: run.run(None, {name: x.numpy()})


def write_checked(plain: nn.Module, path: str | os.PathLike, source: nn.Module, check_input: torch.Tensor, *,
                  save_dtype: torch.dtype = torch.float32, tolerance: float | None = None) -> Written:
    """Write ``plain`` to ``path`` in the format its suffix names, in ``save_dtype``, and check the file.

    The file is loaded back from a temporary file by its format's reader and run on ``check_input``
    (cast to ``save_dtype``); its outputs are compared with ``source(check_input)`` in ``check_input``'s
    dtype. Above ``tolerance`` (default :func:`tolerance_for` ``save_dtype``) nothing is written and
    :class:`CheckFailedError` is raised. ONNX files are float32 only.
    """
    suffix = format_of(path)
    if suffix == ".onnx" and save_dtype != torch.float32:
        raise UnknownFormatError("ONNX files are written in float32 only (ONNX Runtime's CPU kernels); "
                                 "use --save-dtype float32")
    tolerance = tolerance_for(save_dtype) if tolerance is None else tolerance
    model = copy.deepcopy(plain).to(device="cpu", dtype=save_dtype).eval()
    example = check_input[:2].to(device="cpu", dtype=save_dtype)
    if example.shape[0] < 2:  # torch.export specialises a batch of 1
        example = torch.cat([example, example])
    with torch.no_grad():
        features = isinstance(model(example), (list, tuple))
    result: dict[str, object] = {}

    def write(tmp: Path) -> None:
        if suffix in (".pt", ".safetensors"):
            # save_plain writes atomically itself; here the temporary file is the target
            save_plain(model, tmp.with_name(tmp.name + suffix))  # type: ignore[arg-type]
            os.replace(tmp.with_name(tmp.name + suffix), tmp)
        elif suffix == ".pt2":
            with open(tmp, "wb") as handle:  # a file object: torch.export wants a .pt2 name otherwise
                torch.export.save(_export_program(model, example), handle)
        else:
            _write_onnx(model, example, tmp)
        loader, run = _loader(suffix, tmp, save_dtype)
        error = max_error(source, _Loaded(run, save_dtype, features), check_input.cpu())
        if not error["max_rel"] <= tolerance:  # NaN fails too
            raise CheckFailedError(f"{path}: the written file, loaded with {loader}, differs from the source model "
                                   f"by a relative error of {error['max_rel']:.3e} (> {tolerance:g}); nothing "
                                   "written")
        result.update(loader=loader, error=error)

    written = write_atomic(path, write)
    return Written(path=written, suffix=suffix, bytes=written.stat().st_size, dtype=save_dtype,
                   loader=str(result["loader"]), error=result["error"])  # type: ignore[arg-type]


def human_size(size: int) -> str:
    """``81.0 MB`` (decimal units, as ``ls -h --si``)."""
    if size < 1000:
        return f"{size} B"
    exponent = min(int(math.log(size, 1000)), 4)
    return f"{size / 1000 ** exponent:.1f} {'kMGT'[exponent - 1]}B"
