"""Network slimming on RMNet (paper sections 3.4, 4.4) and the ResNet baseline under residual constraints."""

from .slimming import PruneReport, add_shortcut_batchnorms_, apply_masks_, bn_keep_masks, prune_plain, slim_and_prune

__all__ = ["PruneReport", "add_shortcut_batchnorms_", "apply_masks_", "bn_keep_masks", "prune_plain",
           "slim_and_prune"]
