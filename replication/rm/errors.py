"""Errors raised by the RM conversion."""

from __future__ import annotations

from torch import nn


class RMConversionError(ValueError):
    """A model or block cannot be converted exactly."""


class UnsupportedModuleError(RMConversionError):
    """A module inside the model has no exact RM conversion.

    The message names the module's path inside the model and its type, so the user can find it.
    """

    def __init__(self, path: str, module: nn.Module | None, reason: str) -> None:
        self.path = path or "<root>"
        self.module_type = type(module).__name__ if module is not None else "None"
        super().__init__(f"cannot convert module '{self.path}' ({self.module_type}): {reason}")


class InputSizeError(RMConversionError):
    """A converted network was given an input size at which it is not exact (it refuses to run).

    The message names the size and the block of the source model that needs another one.
    """
