"""Building models by name from timm's registry (which includes this project's models) or torchvision."""

from __future__ import annotations

import difflib

import timm
import torch
import torchvision
from torch import nn

from . import models  # noqa: F401  (importing it registers the project's model families with timm)


class UnknownModelError(KeyError):
    """No model of that name in timm's registry or torchvision."""

    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0])


def _torchvision_names() -> list[str]:
    return torchvision.models.list_models(module=torchvision.models)


def _resolve(name: str) -> tuple[str, str]:
    """(source, bare name) of a model name, or :class:`UnknownModelError` with close matches."""
    source, _, bare = name.rpartition(":")
    if source not in ("", "timm", "torchvision"):
        raise UnknownModelError(f"unknown model source {source!r} in {name!r}: use 'timm:' or 'torchvision:'")
    if source in ("", "timm") and timm.is_model(bare):
        return "timm", bare
    if source in ("", "torchvision") and bare in _torchvision_names():
        return "torchvision", bare
    candidates = timm.list_models() + _torchvision_names()
    close = list(dict.fromkeys(difflib.get_close_matches(bare, candidates, n=8)))[:5]
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownModelError(f"unknown model {name!r} (not in timm's registry or torchvision).{hint}")


def check_name(name: str) -> None:
    """Raise :class:`UnknownModelError` (with close matches) unless ``name`` can be built."""
    _resolve(name)


def create(name: str, *, device: str | torch.device | None = None, **kwargs) -> nn.Module:
    """Create ``name``: ``timm:NAME``, ``torchvision:NAME``, or a bare name (timm first, then torchvision).

    ``kwargs`` go to the constructor (``num_classes``, ...). No pretrained weights are downloaded.
    ``device`` builds the model there, for every source (torchvision's and some of this project's
    constructors take no such argument): ``device="meta"`` gives shapes without memory.
    """
    if device is not None:
        with torch.device(device):
            return create(name, **kwargs)
    source, bare = _resolve(name)
    if source == "timm":
        return timm.create_model(bare, pretrained=False, **kwargs)
    in_chans = kwargs.pop("in_chans", 3)  # torchvision constructors have no such argument
    if in_chans != 3:
        raise ValueError(f"torchvision model {bare!r} takes 3 input channels, not {in_chans}")
    return torchvision.models.get_model(bare, weights=None, **kwargs)
