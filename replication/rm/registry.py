"""The way into RM for a model family: a reader that lists a model's parts in forward order.

A reader takes ``(model, downsample, fuse_bn)`` and returns a list of :class:`Part`: one per residual
block (built by :func:`reserve_and_merge`) and one per branch-free stretch (stem, head). Each part
builds its plain layers lazily, so :func:`replication.rm.convert` can stop at the first refusal while
a report can build every part and say, block by block, what converts and what does not.

Built-in readers (``rm/readers/``) cover torchvision and timm. Model families elsewhere register their
own with :func:`register_reader`; the RM core never imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar, cast

from torch import nn

from .blocks import DownsampleType, ResidualBranch, reserve_and_merge, reserved_width
from .errors import UnsupportedModuleError


class Built(NamedTuple):
    """The plain layers of one part, and how many reserved channels RM added to carry its input."""

    layers: list[nn.Module]
    reserved: int = 0


@dataclass
class Part:
    """One piece of a model in forward order.

    ``path`` is the module path in the model (``"layer2.0"``; ``""`` for the root), ``module`` the
    source module (its parameters are the part's "before" count), ``residual`` whether RM applies.
    ``build()`` returns the :class:`Built` layers or raises :class:`UnsupportedModuleError`.
    ``tap``: a feature extractor (timm ``features_only``) returns the activation after this part.
    """

    path: str
    module: nn.Module | None
    build: Callable[[], Built]
    residual: bool = False
    notes: list[str] = field(default_factory=list)
    tap: bool = False


Reader = Callable[[nn.Module, DownsampleType, bool], list[Part] | list[nn.Module]]
_READERS: list[tuple[Callable[[nn.Module], bool], Reader, str]] = []
# A reader may annotate its model as the class it is registered for (it is only called on those).
_AnyReader = TypeVar("_AnyReader", bound=Callable[..., Any])


def register_reader(match: type | tuple[type, ...] | Callable[[nn.Module], bool], description: str
                    ) -> Callable[[_AnyReader], _AnyReader]:
    """Decorator: use ``reader`` for models of type ``match`` (or where ``match(model)`` is true).

    The newest registration wins, so a subclass's reader registered after its base's is found first.
    A reader returns :class:`Part` objects (see :func:`plain_part`, :func:`residual_part`), or, more
    simply, the whole plain layer list, which then counts as one part.
    """
    if isinstance(match, type) or (isinstance(match, tuple) and all(isinstance(t, type) for t in match)):
        types = match

        def matches(model: nn.Module) -> bool:
            return isinstance(model, types)
    else:
        matches = match  # type: ignore[assignment]

    def wrap(reader: _AnyReader) -> _AnyReader:
        _READERS.insert(0, (matches, cast(Reader, reader), description))
        return reader

    return wrap


def supported_families() -> list[str]:
    return [description for _, _, description in _READERS]


def find_reader(model: nn.Module) -> Reader:
    for matches, reader, _ in _READERS:
        if matches(model):
            return reader
    raise UnsupportedModuleError("", model, "no RM conversion for this model type. Supported: "
                                 + "; ".join(supported_families()))


def read_parts(model: nn.Module, downsample: DownsampleType, fuse_bn: bool) -> list[Part]:
    """The parts of ``model`` (modified by building them: pass a working copy)."""
    result = find_reader(model)(model, downsample, fuse_bn)
    if all(isinstance(item, Part) for item in result):
        return list(result)  # type: ignore[arg-type]
    layers = list(result)
    return [Part("", model, lambda: Built(layers))]  # type: ignore[arg-type]


def plain_part(path: str, module: nn.Module | None, layers: Callable[[], list[nn.Module]]) -> Part:
    """A branch-free stretch: ``layers()`` gives its plain layers."""
    return Part(path, module, lambda: Built(layers()))


def residual_part(path: str, module: nn.Module, branch: Callable[[], ResidualBranch], downsample: DownsampleType,
                  fuse_bn: bool) -> Part:
    """A residual block: ``branch()`` reads it as a :class:`ResidualBranch`, RM turns it plain."""

    def build() -> Built:
        read = branch()
        return Built(reserve_and_merge(read, downsample, fuse_bn=fuse_bn), reserved_width(read, downsample))

    return Part(path, module, build, residual=True)
