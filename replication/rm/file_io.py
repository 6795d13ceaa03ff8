"""The files the RM core reads and writes, with torch and the standard library only (rm depends on
nothing else in the suite): the suite's one atomic writer, :func:`write_atomic`, and
``torch.load(weights_only=True)`` with one clear :class:`CheckpointError` for a missing or corrupt file.
The suite's results writers (:mod:`replication.atomic_io`) and checkpoint helpers
(:mod:`replication.checkpoint_files`) build on these."""

from __future__ import annotations

import errno
import os
import pickle
import re
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointError", "DiskFullError", "check_target", "load_checkpoint", "save_atomic", "write_atomic"]

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """The disk (or the user's quota) filled up during an atomic write: the target is unchanged and no
    temporary file is left."""

    def __init__(self, message: str, code: int = errno.ENOSPC) -> None:
        super().__init__(message)
        self.errno = code


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_target(path: Path) -> None:
    """Refuse to replace anything but a regular file: a rename over a symlink, a FIFO or a device
    node would silently turn it into a regular file."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        kind = "a symlink" if path.is_symlink() else "a directory" if path.is_dir() else "not a regular file"
        raise FileExistsError(f"refusing to write {path}: it exists and is {kind}")


def write_atomic(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """The suite's one atomic writer: ``write(tmp)`` fills a fresh temporary file beside ``path``, which
    then replaces ``path`` in one rename. A kill leaves the old file or the new one, never half of
    one; a target that exists and is not a regular file is refused (:func:`check_target`)."""
    path = Path(path)
    check_target(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        tmp = Path(name)
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; results are meant to be shared
        os.replace(tmp, path)
    except OSError as error:
        if error.errno in _NO_SPACE:  # an inner atomic write (a format writer) is re-named as this path
            state = "it is unchanged" if path.exists() else "nothing was written"
            raise DiskFullError(f"disk full: cannot write {path} ({os.strerror(error.errno)}); {state} and "
                                "no partial file is left", error.errno) from None
        raise
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return path


def _torch_save(payload: Any, tmp: Path) -> None:
    # Through a Python file object: torch's own file writer reports a full disk as "unexpected pos ...",
    # a Python write raises OSError(ENOSPC), which write_atomic turns into DiskFullError.
    with open(tmp, "wb") as handle:
        torch.save(payload, handle)


def save_atomic(payload: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through the suite's atomic writer: a kill never leaves half a checkpoint."""
    return write_atomic(path, lambda tmp: _torch_save(payload, tmp))


_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # torch's weights-only message has terminal bold codes


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or does not fit the model."""


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``, with one clear message for a missing or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"checkpoint {path} is not a PyTorch checkpoint: torch.save writes a zip "
                              "archive and this file is not one (truncated, or another format)")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()  # torch.save records a CRC-32 per entry; torch.load never checks it
    except (zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"checkpoint {path} cannot be read: {error}") from None
    if damaged is not None:
        raise CheckpointError(f"checkpoint {path} is corrupt: entry {damaged!r} fails its CRC-32 check "
                              "(flipped bytes on disk or in transfer); restore it or retrain")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as error:
        raise CheckpointError(_unreadable(path, error)) from None


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def _unreadable(path: Path, error: Exception) -> str:
    """The whole reason a checkpoint cannot be read as weights, in plain text (torch's message carries
    terminal escapes and advice to load untrusted pickles): for a pickled object, how to save a state_dict."""
    text = _ANSI.sub("", str(error))
    found = _GLOBAL.search(text)
    if found:
        return (f"checkpoint {path} holds a pickled Python object ({found.group(1)}), not only weights: it was "
                "saved with torch.save(model) rather than torch.save(model.state_dict()). This suite loads "
                "checkpoints with torch.load(weights_only=True), which does not run pickled code. Save the "
                "state_dict instead: in the code that trained the model, torch.save(model.state_dict(), "
                "'weights.pth'); or, only if you trust the file, convert it once with python -c \"import torch; "
                f"torch.save(torch.load('{path}', weights_only=False).state_dict(), 'weights.pth')\" "
                "and pass weights.pth.")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (f"checkpoint {path} cannot be read as weights (torch.load with weights_only=True failed: "
            f"{' '.join(lines) if lines else type(error).__name__})")
