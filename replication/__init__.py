"""RMNet replication suite: exact RM conversions, model registries, measurement and experiments."""

from . import models  # noqa: F401  (registers the project's models with timm)

__version__ = "0.1.0"
