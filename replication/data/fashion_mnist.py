"""Fashion-MNIST read from IDX files (gzipped or not), as Debian's dataset-fashion-mnist installs them.

The IDX files are parsed by torchvision's reader (``torchvision.datasets.mnist.read_sn3_pascalvincent_tensor``);
this module adds what it lacks: gzip input, and one :class:`DatasetFormatError` naming the file for a
truncated or malformed file, or for a label outside the ten classes.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets.mnist import SN3_PASCALVINCENT_TYPEMAP, read_sn3_pascalvincent_tensor

from .errors import DatasetFormatError, DatasetNotFoundError, check_labels

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def _find(root: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    return None


def _diagnose(raw: Path) -> str:
    """Why torchvision's reader refused ``raw``: read back from its header (error path only)."""
    size = raw.stat().st_size
    with open(raw, "rb") as handle:
        head = handle.read(16)
    if size < 4:
        return f"it holds {size} bytes, fewer than the 4-byte IDX magic number (truncated?)"
    ndim, dtype = head[3], head[2]
    if head[:2] != b"\x00\x00" or dtype not in SN3_PASCALVINCENT_TYPEMAP or not 1 <= ndim <= 3:
        return f"its magic number 0x{head[:4].hex()} is not that of an IDX file with 1 to 3 dimensions"
    if size < 4 + 4 * ndim:
        return f"its header is truncated: {size} bytes, where a {ndim}-d IDX header takes {4 + 4 * ndim}"
    shape = tuple(int.from_bytes(head[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    itemsize = torch.empty(0, dtype=SN3_PASCALVINCENT_TYPEMAP[dtype]).element_size()
    expected = itemsize * int(torch.tensor(shape).prod())
    return (f"the header says shape {shape} ({expected} bytes of data) but the file holds "
            f"{size - 4 - 4 * ndim} (truncated?)")


def _read_raw(raw: Path, shown: Path, ndim: int | None) -> torch.Tensor:
    try:
        tensor = read_sn3_pascalvincent_tensor(str(raw), strict=True)
    except (AssertionError, ValueError, TypeError, KeyError, IndexError, RuntimeError):
        raise DatasetFormatError(f"{shown} is not a valid IDX file: {_diagnose(raw)}") from None
    if tensor.dtype != torch.uint8 or (ndim is not None and tensor.ndim != ndim):
        raise DatasetFormatError(f"{shown}: expected a {ndim or 'n'}-d unsigned-byte IDX file, found a "
                                 f"{tensor.ndim}-d {tensor.dtype} one")
    return tensor


def read_idx(path: str | os.PathLike, ndim: int | None = None) -> torch.Tensor:
    """An unsigned-byte IDX file (gzipped or not) as a uint8 tensor: labels (N,), images (N, H, W).

    ``ndim``, if given, is the number of dimensions the file must have. A truncated gzip stream, a short
    header, a wrong magic number or a body that does not match the header raises
    :class:`DatasetFormatError` naming ``path``.
    """
    path = Path(path)
    if path.suffix != ".gz":
        return _read_raw(path, path, ndim)
    # torchvision's reader takes an uncompressed file: decompress into a private temporary folder.
    with tempfile.TemporaryDirectory(prefix="idx-") as folder:
        raw = Path(folder) / path.stem
        try:
            with gzip.open(path, "rb") as source, open(raw, "wb") as target:
                shutil.copyfileobj(source, target)
        except (EOFError, zlib.error, gzip.BadGzipFile) as error:
            raise DatasetFormatError(f"{path} cannot be decompressed: the gzip stream is truncated or "
                                     f"damaged ({error})") from None
        return _read_raw(raw, path, ndim)


class FashionMNIST(Dataset):
    """(image, label) pairs; images are PIL grayscale 28x28 before ``transform``."""

    classes = CLASSES

    def __init__(self, root: str | os.PathLike = DEFAULT_ROOT, train: bool = True,
                 transform: Callable | None = None) -> None:
        root = Path(root)
        image_stem, label_stem = FILES["train" if train else "test"]
        images, labels = _find(root, image_stem), _find(root, label_stem)
        if images is None or labels is None:
            raise DatasetNotFoundError(
                f"Fashion-MNIST not found in {root}: looked for {image_stem}[.gz] and {label_stem}[.gz]. "
                "Install Debian's package (apt-get install dataset-fashion-mnist) or pass the folder that "
                "holds the IDX files as the dataset root.")
        self.images = read_idx(images, ndim=3).numpy()
        self.targets = read_idx(labels, ndim=1).long()
        if len(self.images) != len(self.targets):
            raise DatasetFormatError(f"{images} has {len(self.images)} images but {labels} has "
                                     f"{len(self.targets)} labels")
        check_labels(self.targets, len(CLASSES), labels, "Fashion-MNIST")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        image = Image.fromarray(self.images[index], mode="L")
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.targets[index])
