"""Activations of a converted block: the block's own non-linearity on computed channels, identity on
reserved channels (paper section 3.1, the PReLU case)."""

import math
from typing import Any

import torch
from torch import nn

from .errors import UnsupportedModuleError


class ChannelwiseClamp(nn.Module):
    """``y[:, c] = clamp(x[:, c], lower[c], upper[c])`` for inputs of shape (N, C, H, W).

    With ``lower = 0, upper = 6`` a channel behaves as ReLU6; with ``-inf, +inf`` as the identity.
    This is how a MobileNetV2 block keeps its ReLU6 cap on computed channels while reserved channels
    pass through unchanged, which a PReLU cannot express (PReLU has no upper bound).
    """

    lower: torch.Tensor
    upper: torch.Tensor

    def __init__(self, lower: torch.Tensor, upper: torch.Tensor) -> None:
        super().__init__()
        if lower.shape != upper.shape or lower.dim() != 1:
            raise ValueError(f"lower and upper must be 1-D of equal length, got {tuple(lower.shape)} "
                             f"and {tuple(upper.shape)}")
        # Stored as (C, 1, 1) so forward is two broadcast ops, traceable and exportable as is.
        self.register_buffer("lower", lower.clone().view(-1, 1, 1))
        self.register_buffer("upper", upper.clone().view(-1, 1, 1))

    @property
    def num_channels(self) -> int:
        return self.lower.numel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.minimum(torch.maximum(x, self.lower), self.upper)

    def extra_repr(self) -> str:
        return f"{self.num_channels}"


def _is_relu6(module: nn.Module) -> bool:
    return isinstance(module, nn.Hardtanh) and module.min_val == 0.0 and module.max_val == 6.0


def is_supported_activation(module: nn.Module | None) -> bool:
    return module is None or isinstance(module, (nn.ReLU, nn.Identity)) or _is_relu6(module)


def reserved_activation(act: nn.Module | None, computed: int, reserved: int, *,
                        reserved_nonnegative: bool, like: torch.Tensor, path: str = "") -> nn.Module | None:
    """The activation for ``computed + reserved`` channels laid out as ``[computed, reserved]``.

    ``act`` is the block's activation (ReLU, ReLU6 or none). Reserved channels must come out
    unchanged: ReLU already does that for non-negative values (the ResNet case, paper section 3.1);
    otherwise a PReLU with slope 0 on computed and 1 on reserved channels (paper's PReLU case), or a
    :class:`ChannelwiseClamp` for ReLU6, whose cap of 6 a PReLU cannot express. Parameters take the
    dtype and device of ``like``.
    """
    factory: dict[str, Any] = {"dtype": like.dtype, "device": like.device}
    if act is None or isinstance(act, nn.Identity):
        return None
    if isinstance(act, nn.ReLU):
        if reserved_nonnegative or reserved == 0:
            return nn.ReLU(inplace=True)
        prelu = nn.PReLU(computed + reserved, **factory)
        with torch.no_grad():
            prelu.weight.copy_(torch.cat([torch.zeros(computed, **factory), torch.ones(reserved, **factory)]))
        return prelu
    if _is_relu6(act):
        if reserved == 0:
            return nn.ReLU6(inplace=True)
        lower = torch.cat([torch.zeros(computed, **factory), torch.full((reserved,), -math.inf, **factory)])
        upper = torch.cat([torch.full((computed,), 6.0, **factory), torch.full((reserved,), math.inf, **factory)])
        return ChannelwiseClamp(lower, upper)
    raise UnsupportedModuleError(path, act, "only ReLU, ReLU6 or no activation can be reserved through")
