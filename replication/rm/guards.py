"""Layers that refuse, at run time, an input a converted network would not compute exactly.

RM works without knowing the input size, but one case depends on it: an average-pool shortcut
(ResNet-D) is carried exactly by a stride-2 conv only when every 2x2 window lies inside the input.
The converted block therefore starts with a :class:`SpatialSizeGuard`, an identity that raises
:class:`InputSizeError` naming the size and the block, so an odd size fails loudly instead of
returning slightly wrong outputs.
"""

from __future__ import annotations

import torch
import torch.fx
from torch import nn

from .errors import InputSizeError


def require_multiple(x: torch.Tensor, multiple: int, where: str) -> torch.Tensor:
    """``x`` unchanged if its height and width are multiples of ``multiple``; else :class:`InputSizeError`."""
    height, width = x.shape[-2], x.shape[-1]
    if height % multiple or width % multiple:
        raise InputSizeError(
            f"the input of block '{where}' is {height}x{width}, not a multiple of {multiple}: its "
            f"{multiple}x{multiple} average-pool shortcut averages fewer pixels at the border there, which has "
            f"no exact RM form. Use an input size at which this block's input is a multiple of {multiple} "
            "(for a ResNet-D at 1/4 after the stem: a multiple of 32).")
    return x


torch.fx.wrap("require_multiple")  # one call node in a traced graph, not a branch on a shape


class SpatialSizeGuard(nn.Module):
    """Identity on inputs of shape (N, C, H, W) with H and W multiples of ``multiple``; refuses others."""

    def __init__(self, multiple: int, where: str = "") -> None:
        super().__init__()
        if multiple < 1:
            raise ValueError(f"multiple must be >= 1, got {multiple}")
        self.multiple = multiple
        self.where = where

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return require_multiple(x, self.multiple, self.where)

    def extra_repr(self) -> str:
        return f"multiple={self.multiple}, where={self.where!r}"
