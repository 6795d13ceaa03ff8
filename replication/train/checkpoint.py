"""Training checkpoints: written atomically each epoch, read with ``torch.load(weights_only=True)``.

A checkpoint written by :func:`replication.train.train` describes itself: its ``model_spec`` entry
(a :class:`ModelSpec`) says how to rebuild the network its weights belong to, so
``python -m replication convert --checkpoint run/checkpoint.pt`` needs nothing else.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from .. import zoo
from ..data.specs import dataset_spec
from ..prune import add_shortcut_batchnorms_
from ..rm import file_io


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


def plain_values(value: Any) -> Any:
    """``value`` as plain Python values (tuples as lists, other objects as strings), so a checkpoint
    that holds it stays loadable with ``weights_only=True``."""
    if isinstance(value, dict):
        return {str(k): plain_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_values(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


@dataclass(frozen=True)
class ModelSpec:
    """How to rebuild a checkpoint's network, and what it was trained on.

    ``build()`` is ``zoo.create(model, num_classes=num_classes, in_chans=in_chans, **model_kwargs)``,
    plus BatchNorms on the identity shortcuts when ``shortcut_batchnorms`` (network-slimming runs).
    Its input is (N, in_chans, image_size, image_size) for the ``dataset`` it was trained on.
    """

    model: str
    num_classes: int
    in_chans: int
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    shortcut_batchnorms: bool = False
    dataset: str | None = None
    image_size: int | None = None

    def build(self) -> nn.Module:
        model = zoo.create(self.model, num_classes=self.num_classes, in_chans=self.in_chans, **self.model_kwargs)
        if self.shortcut_batchnorms:
            add_shortcut_batchnorms_(model)
        return model

    def as_dict(self) -> dict[str, Any]:
        """Plain Python values only, so the checkpoint stays loadable with ``weights_only=True``."""
        return plain_values(asdict(self))

    @classmethod
    def from_checkpoint(cls, payload: Any) -> ModelSpec | None:
        """The spec a checkpoint records; for checkpoints of this suite written before specs were
        recorded, the spec rebuilt from their run config (class count from the dataset, input channels
        from the first conv's weight). None for anything else (a bare state_dict, another tool's file,
        a run that trained a model passed in by code)."""
        if not isinstance(payload, dict):
            return None
        if isinstance(payload.get("model_spec"), dict):
            return cls(**payload["model_spec"])
        config, state = payload.get("config"), payload.get("model")
        if "model_spec" in payload or not isinstance(config, dict) or not isinstance(state, dict) \
                or not payload.get("model_name"):
            return None
        data = config.get("data", {})
        convs = [v for k, v in state.items() if k.endswith("weight") and getattr(v, "ndim", 0) == 4]
        if not data.get("name") or not convs:
            return None
        spec = dataset_spec(data["name"])
        return cls(model=payload["model_name"], num_classes=spec.num_classes, in_chans=int(convs[0].shape[1]),
                   model_kwargs=dict(config.get("model_kwargs", {})),
                   shortcut_batchnorms=bool(config.get("shortcut_batchnorms", False)), dataset=data["name"],
                   image_size=data.get("image_size") or spec.native_size)


def load_training_checkpoint(path: str | os.PathLike, model_name: str) -> dict[str, Any]:
    """A checkpoint written by the engine for ``model_name``; another architecture is a clear error."""
    payload = file_io.load_checkpoint(path)
    if not isinstance(payload, dict) or "model" not in payload or "epoch" not in payload:
        raise file_io.CheckpointError(f"{path} is not a training checkpoint of this suite "
                                      "(no 'model' / 'epoch' entries)")
    if payload.get("model_name") != model_name:
        raise file_io.CheckpointError(f"{path} holds a checkpoint of {payload.get('model_name')!r}, not {model_name!r}")
    return payload
