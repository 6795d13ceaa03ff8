"""Building models by name from timm's registry (which includes this project's models) or torchvision."""

from __future__ import annotations

import collections.abc
import difflib
import functools
import inspect
import json
import re
import types
import typing
from typing import Any

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


class ModelKwargsError(ValueError):
    """Constructor arguments a model does not take: an unknown name, a value of the wrong type, or a
    combination its constructor refuses. The message names the key."""


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
    try:
        if source == "timm":
            return timm.create_model(bare, pretrained=False, **kwargs)
        in_chans = kwargs.pop("in_chans", 3)  # torchvision constructors have no such argument
        if in_chans != 3:
            raise ValueError(f"torchvision model {bare!r} takes 3 input channels, not {in_chans}")
        return torchvision.models.get_model(bare, weights=None, **kwargs)
    except TypeError as error:  # a constructor argument it does not take, or of a type it cannot use
        if not kwargs:
            raise
        raise ModelKwargsError(f"model {name!r} cannot be built with {_show(kwargs)}: {_first_line(error)}") from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _show(kwargs: dict[str, Any]) -> str:
    try:
        return json.dumps(kwargs, sort_keys=True)
    except (TypeError, ValueError):
        return repr(kwargs)


def _constructor_parameters(cls: type) -> dict[str, Any]:
    """Keyword parameters of ``cls``'s constructor -> their type hint (None when unknown), following
    ``**kwargs`` up the class hierarchy as far as they are passed on."""
    found: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None or klass in (object, nn.Module):
            continue
        try:
            parameters = list(inspect.signature(init).parameters.values())[1:]
        except (TypeError, ValueError):
            break
        try:
            hints = typing.get_type_hints(init)
        except Exception:  # noqa: BLE001  (an annotation this Python cannot resolve: no hints, no check)
            hints = {}
        for parameter in parameters:
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                found.setdefault(parameter.name, hints.get(parameter.name))
        if not any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters):
            break
    return found


@functools.cache
def _parameters_of(name: str) -> dict[str, Any]:
    """:func:`_constructor_parameters` of the class ``name`` builds (built once, on the meta device)."""
    try:
        return _constructor_parameters(type(create(name, device="meta")))
    except Exception:  # noqa: BLE001  (no default build: check_kwargs's full build reports)
        return {}


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value (int, float, bool, str, list, dict, None) fits a type hint; True for hints
    this check does not understand (classes, callables: the constructor decides)."""
    if hint is None or hint is Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is typing.Literal:
        return value in args
    if hint in (list, tuple) or origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        if not args:
            return True
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
        return all(_matches(v, args[0]) for v in value)
    if hint is dict or origin is dict:
        return isinstance(value, dict)
    return True


def _hint_name(hint: Any) -> str:
    if typing.get_origin(hint) is None and hasattr(hint, "__name__"):
        return hint.__name__
    return str(hint).replace("typing.", "")


_UNKNOWN = (re.compile(r"unexpected keyword argument '(\w+)'"), re.compile(r"unexpected arguments?: ([\w, ]+)"))


def check_kwargs(name: str, kwargs: dict[str, Any], *, where: str = "model_kwargs",
                 reserved: tuple[str, ...] = (), **fixed: Any) -> None:
    """Raise :class:`ModelKwargsError` naming ``where.<key>`` unless ``name`` can be built with ``kwargs``
    (plus ``fixed``, e.g. the dataset's ``num_classes`` and ``in_chans``): every key a parameter of its
    constructor, every value of the parameter's annotated type, and the whole built on the meta device
    (no memory, milliseconds). ``reserved`` keys are set by the caller and refused in ``kwargs``.
    Also :class:`UnknownModelError` for an unknown ``name``."""
    _resolve(name)
    if not isinstance(kwargs, dict) or not all(isinstance(key, str) for key in kwargs):
        raise ModelKwargsError(f"{where}: must be a mapping of argument names to values, got {kwargs!r}")
    for key in kwargs:
        if key in reserved:
            raise ModelKwargsError(f"{where}.{key}: set by the run itself (from the dataset); remove it")
    if not kwargs:
        if _resolve(name)[0] == "torchvision" and fixed.get("in_chans", 3) != 3:
            raise ModelKwargsError(f"{where}: torchvision model {name!r} takes 3 input channels, "
                                   f"not {fixed['in_chans']}")
        return  # the model's own defaults: nothing of the caller's to check
    parameters = _parameters_of(name)
    for key, value in kwargs.items():
        if key in parameters and not _matches(value, parameters[key]):
            raise ModelKwargsError(f"{where}.{key}: {json.dumps(value)} is not of the type {name} expects "
                                   f"({_hint_name(parameters[key])})")
    try:
        create(name, device="meta", **fixed, **kwargs)
    except UnknownModelError:
        raise
    except Exception as error:  # noqa: BLE001  (whatever the constructor raises, reported as one line)
        text = _first_line(error.__cause__ if isinstance(error, ModelKwargsError) and error.__cause__ else error)
        for pattern in _UNKNOWN:
            match = pattern.search(text)
            if match:
                unknown = [word.strip() for word in match.group(1).split(",") if word.strip()]
                close = difflib.get_close_matches(unknown[0], list(parameters), n=3) if unknown else []
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ModelKwargsError(f"{where}.{unknown[0] if unknown else '?'}: {name} has no such "
                                       f"constructor argument{hint}") from None
        raise ModelKwargsError(f"{where}: {name} cannot be built with {_show(kwargs)}: {text}") from None
