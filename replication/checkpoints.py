"""Old name of :mod:`replication.checkpoint_files`, kept so existing imports still work."""

from .checkpoint_files import (  # noqa: F401
    CheckpointError,
    extract_state_dict,
    load_checkpoint,
    load_weights,
    save_atomic,
)
