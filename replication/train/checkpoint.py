"""Training checkpoints: written atomically each epoch, read with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import os
import random
from typing import Any

import torch

from ..checkpoints import CheckpointError, load_checkpoint, save_atomic  # noqa: F401  (save_atomic re-exported)


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_training_checkpoint(path: str | os.PathLike, model_name: str) -> dict[str, Any]:
    """A checkpoint written by the engine for ``model_name``; another architecture is a clear error."""
    payload = load_checkpoint(path)
    if not isinstance(payload, dict) or "model" not in payload or "epoch" not in payload:
        raise CheckpointError(f"{path} is not a training checkpoint of this suite (no 'model' / 'epoch' entries)")
    if payload.get("model_name") != model_name:
        raise CheckpointError(f"{path} holds a checkpoint of {payload.get('model_name')!r}, not {model_name!r}")
    return payload
