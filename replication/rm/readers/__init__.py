"""Built-in readers, one module per source: :mod:`.torchvision` and :mod:`.timm`; shared helpers in
:mod:`.common`. Importing this package registers them (see :func:`replication.rm.register_reader`)."""

from . import common, timm, torchvision  # noqa: F401  (registration happens on import)

__all__ = ["common", "timm", "torchvision"]
