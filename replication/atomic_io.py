"""The suite's writers of results files (CSV, text, appended rows), built on the one atomic writer
:func:`replication.rm.file_io.write_atomic`: a crash never leaves a half-written file or row."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from .provenance import provenance as current
from .rm import file_io

__all__ = ["TargetNotWritableError", "append_rows_atomic", "check_not_input", "check_writable", "write_csv_atomic",
           "write_text_atomic"]


class TargetNotWritableError(ValueError):
    """An output path that cannot be written, found before any work is done."""


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)  # hard links and symlinked folders too
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_not_input(outputs: Iterable[str | os.PathLike], inputs: Mapping[str, str | os.PathLike | None]) -> None:
    """Raise :class:`TargetNotWritableError` if a file the command will write is one of the files it reads
    (``inputs``: option name -> path; None entries are skipped), so a write never destroys its own input."""
    for output in outputs:
        for option, source in inputs.items():
            if source is not None and _same_file(Path(output), Path(source)):
                raise TargetNotWritableError(f"refusing to write {output}: it is the file given to {option} "
                                             f"({source}), which this command reads; choose another output")


def check_writable(path: str | os.PathLike, *, folder: bool = False,
                   inputs: Mapping[str, str | os.PathLike | None] | None = None) -> Path:
    """Raise :class:`TargetNotWritableError` (or ``FileExistsError``, see ``rm.file_io.check_target``) unless a file
    (or, with ``folder``, a folder) can be written at ``path``. Creates nothing that stays: the nearest
    existing parent is asked for a temporary file, which is what the atomic writers will need. A file
    that is one of the command's ``inputs`` is refused (:func:`check_not_input`)."""
    path = Path(path)
    if inputs and not folder:
        check_not_input([path], inputs)
    if folder:
        if path.exists() and not path.is_dir():
            raise TargetNotWritableError(f"cannot write into {path}: it exists and is not a folder")
    else:
        file_io.check_target(path)
    ancestor = path if folder else path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise TargetNotWritableError(f"cannot write {path}: {ancestor} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as error:
        raise TargetNotWritableError(f"cannot write {path}: {ancestor} does not accept new files "
                                     f"({error.strerror or error})") from None
    return path


def write_csv_atomic(frame: pd.DataFrame, path: str | os.PathLike, *, provenance: bool = True) -> Path:
    """Write ``frame`` to ``path`` atomically (:func:`replication.rm.file_io.write_atomic`).

    With ``provenance`` (the default for results), columns the frame lacks among the suite's commit
    and the torch / torchvision / timm / onnxruntime versions are added to every row; columns it
    has keep their values (a gathered CSV keeps the provenance of the runs it gathers)."""
    if provenance:
        frame = frame.assign(**{key: value for key, value in current().items() if key not in frame.columns})
    return file_io.write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False))


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`replication.rm.file_io.write_atomic`)."""
    return file_io.write_atomic(path, lambda tmp: tmp.write_text(text))


def append_rows_atomic(rows: list[dict[str, object]], path: str | os.PathLike) -> Path:
    """Add ``rows`` to the CSV at ``path`` (created if missing) by an atomic rewrite.

    A crash leaves either the old file or the new one, never a half-written row. New columns are
    added; rows that lack a column get an empty value.
    """
    path = Path(path)
    new = pd.DataFrame.from_records(rows)
    new = new.assign(**{key: value for key, value in current().items() if key not in new.columns})
    if path.exists() and path.stat().st_size > 0:
        new = pd.concat([pd.read_csv(path), new], ignore_index=True)
    return write_csv_atomic(new, path)
