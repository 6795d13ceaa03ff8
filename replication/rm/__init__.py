"""The RM (Reserve and Merge) operation: residual networks to exactly equivalent plain networks.

Pieces (paper section 3): :mod:`.primitives` (Dirac filters, identity BN, kernel padding, Eq. 4),
:mod:`.blocks` (reserve + merge on one residual block, both downsampling types),
:mod:`.architectures` (reading ResNet / MobileNetV2 families), :mod:`.convert` (the entry point).
"""

from .activations import ChannelwiseClamp
from .blocks import DOWNSAMPLE_TYPES, ResidualBranch, reserve_and_merge
from .convert import convert, convert_block, convert_branch, fold_batchnorms, fuse_consecutive_pointwise
from .errors import RMConversionError, UnsupportedModuleError
from .primitives import ConvBN, dirac_filters, fuse_pointwise, identity_batchnorm, pad_kernel
from .verify import max_error

__all__ = [
    "DOWNSAMPLE_TYPES", "ChannelwiseClamp", "ConvBN", "RMConversionError", "ResidualBranch",
    "UnsupportedModuleError", "convert", "convert_block", "convert_branch", "dirac_filters",
    "fold_batchnorms", "fuse_consecutive_pointwise", "fuse_pointwise", "identity_batchnorm", "max_error",
    "pad_kernel", "reserve_and_merge",
]
