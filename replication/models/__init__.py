"""timm-registered model families of the paper. Importing this package registers them with timm.

After ``import replication``, ``timm.create_model("rmnet26x3_32_cifar")`` etc. work and
``timm.list_models("rmnet*")`` lists the family.
"""

from . import rmnet  # noqa: F401

__all__ = ["rmnet"]
