"""Reserved channels as a type: the BatchNorm of a converted network that keeps BN (``fuse_bn=False``).

RM widens a conv with reserved channels that copy the block input. Under a kept BN they sit behind an
identity BN (paper Eq. 2). :class:`ReservedBatchNorm2d` records which channels those are in a buffer,
so the span survives ``state_dict`` / ``load_state_dict`` and a saved deploy model can be loaded and
fine-tuned (``replication.train.finetune`` calibrates exactly those channels).
"""

import torch
from torch import nn

from .errors import RMConversionError


class ReservedBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` over channels ``[computed, reserved]``; ``reserved_span`` = [start, stop).

    Forward is BatchNorm2d's, unchanged. At conversion the reserved channels are the identity (their
    weight is sqrt(var + eps) and bias the running mean); fine-tuning may then train them like any other.
    """

    reserved_span: torch.Tensor
    __jit_unused_properties__ = ["rm_reserved"]  # a Python-side helper: TorchScript compiles forward only

    def __init__(self, num_features: int, reserved: tuple[int, int] | None = None, eps: float = 1e-5,
                 momentum: float | None = 0.1, affine: bool = True, track_running_stats: bool = True,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype)
        start, stop = reserved if reserved is not None else (num_features, num_features)
        if not 0 <= start <= stop <= num_features:
            raise ValueError(f"reserved span [{start}, {stop}) is not inside {num_features} channels")
        self.register_buffer("reserved_span", torch.tensor([start, stop], dtype=torch.long, device=device))

    @property
    def rm_reserved(self) -> tuple[int, int]:
        """(start, stop) of the reserved channels."""
        start, stop = self.reserved_span.tolist()
        return int(start), int(stop)

    @classmethod
    def concat(cls, computed: nn.BatchNorm2d, reserved: nn.BatchNorm2d) -> "ReservedBatchNorm2d":
        """One BN over the channels of ``computed`` then those of ``reserved`` (eps must agree), eval mode."""
        if computed.eps != reserved.eps:
            raise RMConversionError(f"cannot concatenate BatchNorms with eps {computed.eps} and {reserved.eps}")
        ref = computed.weight
        start = computed.num_features
        bn = cls(start + reserved.num_features, (start, start + reserved.num_features), eps=computed.eps,
                 dtype=ref.dtype, device=ref.device)
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(bn, name).copy_(torch.cat([getattr(computed, name), getattr(reserved, name)]))
        return bn.eval()

    def extra_repr(self) -> str:
        start, stop = (int(v) for v in self.reserved_span.tolist()) if self.reserved_span.device.type != "meta" \
            else ("?", "?")
        return f"{super().extra_repr()}, reserved=[{start}, {stop})"
