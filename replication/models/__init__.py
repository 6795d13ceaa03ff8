"""timm-registered model families of the paper. Importing this package registers them with timm.

After ``import replication``, ``timm.create_model("rmnet26x3_32_cifar")`` etc. work and
``timm.list_models("rmnet*")`` lists the family. One file per family:

- :mod:`.rmnet`: the RMNet inverted-residual family (section 4.2, Tables 1 and 4).
- :mod:`.resnet_variants`: CIFAR-stem ResNets, the ResDistill plain students, depth-study ResNets.
- :mod:`.repvgg_variants`: RepVGG built from ResNet (Table 3, Figure 5) and RepVGG-A2 for CIFAR.
- :mod:`.diracnet`: DiracNet-34.
- :mod:`.mobilenet_cifar`: MobileNetV1 and the MobileNetV2 designed to convert into it (Table 2).

What they share: :mod:`.classifier_head` (timm's head API), :mod:`.feature_taps` (feature taps and
pruning to a tap) and :mod:`.defaults` (timm default cfgs and the paper's stage widths).
"""

from . import diracnet, mobilenet_cifar, repvgg_variants, resnet_variants, rmnet  # noqa: F401

__all__ = ["diracnet", "mobilenet_cifar", "repvgg_variants", "resnet_variants", "rmnet"]


def registered_models() -> list[str]:
    """Names of the models this project registers with timm (timm's own models not included)."""
    import timm

    return sorted(name for module in __all__ for name in timm.list_models(module=module))
