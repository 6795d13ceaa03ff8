"""Reading checkpoint files with clear errors (torch.load with weights_only=True)."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .results import write_atomic


def save_atomic(payload: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through the suite's atomic writer: a kill never leaves half a checkpoint."""
    return write_atomic(path, lambda tmp: torch.save(payload, tmp))


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or does not fit the model."""


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``, with one clear message for a missing or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"checkpoint {path} is not a PyTorch checkpoint: torch.save writes a zip "
                              "archive and this file is not one (truncated, or another format)")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()  # torch.save records a CRC-32 per entry; torch.load never checks it
    except (zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"checkpoint {path} cannot be read: {error}") from None
    if damaged is not None:
        raise CheckpointError(f"checkpoint {path} is corrupt: entry {damaged!r} fails its CRC-32 check "
                              "(flipped bytes on disk or in transfer); restore it or retrain")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"checkpoint {path} cannot be read as weights (torch.load with "
                              f"weights_only=True failed: {first_line[:300]})") from None


def extract_state_dict(payload: Any, path: str | os.PathLike = "<checkpoint>") -> dict[str, torch.Tensor]:
    """The state_dict in a checkpoint: the payload itself, or under 'state_dict', 'model' or 'ema'."""
    if isinstance(payload, dict):
        for key in ("state_dict", "model", "model_state_dict", "ema"):
            if isinstance(payload.get(key), dict):
                payload = payload[key]
                break
        if payload and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in payload.items()):
            return {k.removeprefix("module."): v for k, v in payload.items()}
    raise CheckpointError(f"checkpoint {path} holds no state_dict (expected a dict of tensors, optionally "
                          "under 'state_dict' or 'model')")


def load_weights(model: nn.Module, path: str | os.PathLike, payload: Any = None) -> nn.Module:
    """Load a checkpoint into ``model`` strictly; mismatches name the offending keys and shapes.

    ``payload``: the checkpoint's content if already read with :func:`load_checkpoint` (read once)."""
    state = extract_state_dict(load_checkpoint(path) if payload is None else payload, path)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                   for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong_shape:
        def show(items):
            return ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")
        problems = []
        if missing:
            problems.append(f"missing keys: {show(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {show(unexpected)}")
        if wrong_shape:
            problems.append(f"shape mismatches: {show(wrong_shape)}")
        raise CheckpointError(f"checkpoint {path} does not fit {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(state)
    return model
