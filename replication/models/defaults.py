"""What the model families share, stated once: timm's default cfg of an ImageNet and of a CIFAR model
(input size, mean / std from :mod:`replication.data.specs`, pooling size, crop) and the paper's stage
widths."""

from typing import Any

from ..data.specs import CIFAR10, IMAGENET

__all__ = ["CIFAR_CFG", "IMAGENET_CFG", "STAGE_WIDTHS", "default_cfg"]

# The stage widths of the paper's ResNets, RMNets and RepVGGs (CIFAR and ImageNet alike).
STAGE_WIDTHS = (64, 128, 256, 512)

IMAGENET_CFG: dict[str, Any] = {**IMAGENET.timm_cfg(), "pool_size": (7, 7), "crop_pct": 0.875}
CIFAR_CFG: dict[str, Any] = {**CIFAR10.timm_cfg(), "pool_size": (4, 4), "crop_pct": 1.0}


def default_cfg(first_conv: str, classifier: str = "fc", **kwargs: Any) -> dict[str, Any]:
    """timm's default cfg of one of the suite's models (no weights to download): the ImageNet cfg, with
    ``kwargs`` on top (``**CIFAR_CFG`` for a CIFAR model)."""
    return {"url": "", **IMAGENET_CFG, "interpolation": "bilinear", "first_conv": first_conv,
            "classifier": classifier, **kwargs}
