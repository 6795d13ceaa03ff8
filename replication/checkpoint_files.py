"""Checkpoint files of any source: the state_dict in one, and loading it into a model with clear errors.

Reading a file (``torch.load`` with ``weights_only=True``, ``CheckpointError`` for a missing or
corrupt one) and writing one atomically live in :mod:`replication.rm.file_io`; import them from there.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from .rm import file_io

__all__ = ["extract_state_dict", "load_weights"]


def extract_state_dict(payload: Any, path: str | os.PathLike = "<checkpoint>") -> dict[str, torch.Tensor]:
    """The state_dict in a checkpoint: the payload itself, or under 'state_dict', 'model' or 'ema'."""
    if isinstance(payload, dict):
        for key in ("state_dict", "model", "model_state_dict", "ema"):
            if isinstance(payload.get(key), dict):
                payload = payload[key]
                break
        if payload and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in payload.items()):
            return {k.removeprefix("module."): v for k, v in payload.items()}
    raise file_io.CheckpointError(f"checkpoint {path} holds no state_dict (expected a dict of tensors, optionally "
                          "under 'state_dict' or 'model')")


def _is_batchnorm(model: nn.Module, key: str) -> bool:
    owner = key.rpartition(".")[0]
    try:
        module = model.get_submodule(owner)
    except AttributeError:
        return False
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def load_weights(model: nn.Module, path: str | os.PathLike, payload: Any = None) -> nn.Module:
    """Load a checkpoint into ``model`` strictly; mismatches name the offending keys and shapes.

    ``payload``: the checkpoint's content if already read with ``rm.file_io.load_checkpoint`` (read once)."""
    state = extract_state_dict(file_io.load_checkpoint(path) if payload is None else payload, path)
    own = model.state_dict()
    # A BatchNorm's step counter, absent from older or trimmed state_dicts: load_state_dict keeps the
    # model's own value for it (BatchNorm's version-1 loading rule), so its absence is no mismatch.
    missing = sorted(key for key in set(own) - set(state)
                     if not (key.rpartition(".")[2] == "num_batches_tracked" and _is_batchnorm(model, key)))
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
        raise file_io.CheckpointError(f"checkpoint {path} does not fit {type(model).__name__}: "
                                      + "; ".join(problems))
    model.load_state_dict(state)
    return model
