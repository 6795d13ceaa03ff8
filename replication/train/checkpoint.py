"""Training checkpoints: written atomically each epoch, read with ``torch.load(weights_only=True)``.

A checkpoint written by :func:`replication.train.train` describes itself: its ``model_spec`` entry
(a :class:`ModelSpec`) says how to rebuild the network its weights belong to, so
``python -m replication convert --checkpoint run/checkpoint.pt`` needs nothing else.
"""

from __future__ import annotations

import numbers
import os
import random
import warnings
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

import torch
from torch import nn

from .. import zoo
from ..data.specs import dataset_spec
from ..prune import add_shortcut_batchnorms_
from ..rm import file_io
from ..rm.file_io import CheckpointError


class NewerCheckpointWarning(UserWarning):
    """A checkpoint holds fields this version of the suite does not know (written by a newer one)."""


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


# ModelSpec field -> (what a valid value is, the check)
_SPEC_FIELDS: dict[str, tuple[str, Any]] = {
    "model": ("a model name (a non-empty string)", lambda v: isinstance(v, str) and bool(v.strip())),
    "num_classes": ("a positive integer", _positive_int),
    "in_chans": ("a positive integer", _positive_int),
    "model_kwargs": ("a mapping of constructor arguments", lambda v: isinstance(v, dict)
                     and all(isinstance(k, str) for k in v)),
    "shortcut_batchnorms": ("true or false", lambda v: isinstance(v, bool)),
    "dataset": ("a dataset name or null", lambda v: v is None or isinstance(v, str)),
    "image_size": ("a positive integer or null", lambda v: v is None or _positive_int(v)),
}


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
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, numbers.Number) and hasattr(value, "item"):
        return value.item()  # a numpy scalar (a pandas row's value): its Python number
    for kind in (bool, int, float):  # subclasses (an IntEnum): the plain value
        if isinstance(value, kind):
            return kind(value)
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
    def from_dict(cls, entry: dict[str, Any], path: str | os.PathLike = "<checkpoint>") -> ModelSpec:
        """The spec of a checkpoint's ``model_spec`` entry. A missing or invalid field is a
        :class:`CheckpointError` naming it; fields this version does not know (a checkpoint of a newer
        version of the suite) are ignored with a :class:`NewerCheckpointWarning` naming them."""
        known = {f.name for f in fields(cls)}
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [name for name in required if name not in entry]
        if missing:
            raise CheckpointError(f"checkpoint {path}: model_spec lacks {', '.join(missing)}")
        bad = [f"{name}={entry[name]!r} (expected {_SPEC_FIELDS[name][0]})" for name in _SPEC_FIELDS
               if name in entry and not _SPEC_FIELDS[name][1](entry[name])]
        if bad:
            raise CheckpointError(f"checkpoint {path}: invalid model_spec field(s): {'; '.join(bad)}")
        extra = sorted(str(key) for key in entry if key not in known)
        if extra:
            warnings.warn(f"checkpoint {path}: model_spec has field(s) this version of the suite does not know "
                          f"(written by a newer version?), ignored: {', '.join(extra)}", NewerCheckpointWarning,
                          stacklevel=2)
        return cls(**{key: value for key, value in entry.items() if key in known})

    @classmethod
    def from_checkpoint(cls, payload: Any, path: str | os.PathLike = "<checkpoint>") -> ModelSpec | None:
        """The spec a checkpoint records; for checkpoints of this suite written before specs were
        recorded, the spec rebuilt from their run config (class count from the dataset, input channels
        from the first conv's weight). None for anything else (a bare state_dict, another tool's file,
        a run that trained a model passed in by code)."""
        if not isinstance(payload, dict):
            return None
        if isinstance(payload.get("model_spec"), dict):
            return cls.from_dict(payload["model_spec"], path)
        if payload.get("model_spec") is not None:
            raise CheckpointError(f"checkpoint {path}: model_spec is a {type(payload['model_spec']).__name__}, "
                                  "not a mapping of fields")
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
