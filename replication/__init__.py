"""RMNet replication suite: exact RM conversions, model registries, measurement and experiments."""

__version__ = "0.1.0"
