"""The RM (Reserve and Merge) operation: residual networks to exactly equivalent plain networks.

Pieces (paper section 3): :mod:`.primitives` (Dirac filters, identity BN, kernel padding, Eq. 4),
:mod:`.blocks` (reserve + merge on one residual block, both downsampling types, average-pool
shortcuts), :mod:`.registry` (the reader interface, :func:`register_reader`), :mod:`.readers`
(torchvision and timm families), :mod:`.convert` (the entry point).

This package depends on torch, torchvision and timm only; model families of the suite register
their readers here, never the other way round.
"""

from .activations import ChannelwiseClamp
from .blocks import DOWNSAMPLE_TYPES, DownsampleType, ResidualBranch, reserve_and_merge
from .convert import convert, convert_block, convert_branch, fold_batchnorms, fuse_consecutive_pointwise
from .errors import InputSizeError, RMConversionError, UnsupportedModuleError
from .features import PlainFeatures
from .guards import SpatialSizeGuard
from .primitives import ConvBN, dirac_filters, fuse_pointwise, identity_batchnorm, pad_kernel
from .registry import Built, Part, find_reader, plain_part, read_parts, register_reader, residual_part
from .reserved import ReservedBatchNorm2d
from .verify import max_error

__all__ = [
    "DOWNSAMPLE_TYPES", "Built", "ChannelwiseClamp", "ConvBN", "DownsampleType", "InputSizeError", "Part",
    "PlainFeatures",
    "RMConversionError", "ReservedBatchNorm2d", "ResidualBranch", "SpatialSizeGuard", "UnsupportedModuleError",
    "convert", "convert_block", "convert_branch", "dirac_filters", "find_reader", "fold_batchnorms",
    "fuse_consecutive_pointwise", "fuse_pointwise", "identity_batchnorm", "max_error", "pad_kernel",
    "plain_part", "read_parts", "register_reader", "reserve_and_merge", "residual_part",
]
