"""Old name of :mod:`replication.atomic_io` (the results writers), kept so existing imports still work."""

from .atomic_io import (  # noqa: F401
    TargetNotWritableError,
    append_rows_atomic,
    check_target,
    check_writable,
    write_atomic,
    write_csv_atomic,
    write_text_atomic,
)
