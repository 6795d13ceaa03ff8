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
