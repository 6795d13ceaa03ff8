"""Fashion-MNIST read from IDX files (gzipped or not), as Debian's dataset-fashion-mnist installs them."""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def _find(root: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    return None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (magic 0x0801 labels, 0x0803 images) as a uint8 array; raises ValueError if malformed."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4:
        raise ValueError(f"{path} is not an IDX file: too short")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (header {data[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but holds {body.size} bytes (truncated?)")
    return body.reshape(shape)


class FashionMNIST(Dataset):
    """(image, label) pairs; images are PIL grayscale 28x28 before ``transform``."""

    classes = CLASSES

    def __init__(self, root: str | os.PathLike = DEFAULT_ROOT, train: bool = True,
                 transform: Callable | None = None) -> None:
        from .datasets import DatasetNotFoundError

        root = Path(root)
        image_stem, label_stem = FILES["train" if train else "test"]
        images, labels = _find(root, image_stem), _find(root, label_stem)
        if images is None or labels is None:
            raise DatasetNotFoundError(
                f"Fashion-MNIST not found in {root}: looked for {image_stem}[.gz] and {label_stem}[.gz]. "
                "Install Debian's package (apt-get install dataset-fashion-mnist) or pass the folder that "
                "holds the IDX files as the dataset root.")
        self.images = read_idx(images)
        self.targets = torch.from_numpy(read_idx(labels).astype(np.int64))
        if len(self.images) != len(self.targets):
            raise ValueError(f"{images} has {len(self.images)} images but {labels} has {len(self.targets)} labels")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        image = Image.fromarray(self.images[index], mode="L")
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.targets[index])
