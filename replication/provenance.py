"""What produced a result: the suite's git commit and the versions of the packages that shape the
numbers. Every results CSV carries these columns (added by ``atomic_io.write_csv_atomic``)."""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "torchvision", "timm", "onnxruntime")
_SOURCE = ("replication", "workflow", "Snakefile", "config")  # what a results row depends on


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
    return result.stdout.strip() if result.returncode == 0 else ""


@functools.lru_cache(maxsize=1)
def suite_commit() -> str:
    """The commit of the checkout this package runs from, with ``+dirty`` when its tracked sources
    differ from it; ``unknown`` outside a git checkout of the suite (an installed wheel)."""
    package = Path(__file__).resolve().parent
    try:
        top = _git(package, "rev-parse", "--show-toplevel")
        if not top or Path(top) / "replication" != package:
            return "unknown"
        commit = _git(package, "rev-parse", "HEAD")
        dirty = _git(Path(top), "status", "--porcelain", "--untracked-files=no", "--", *_SOURCE)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}+dirty" if commit and dirty else commit or "unknown"


@functools.lru_cache(maxsize=1)
def provenance() -> dict[str, str]:
    """``suite_commit`` and ``<package>_version`` for each of PACKAGES (empty when not installed)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[f"{name}_version"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[f"{name}_version"] = ""
    return {"suite_commit": suite_commit(), **versions}
