"""Small datasets in the real on-disk formats, written by the tests."""

import gzip
import pickle
import struct

import numpy as np
import pytest


def write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def learnable_images(count: int, size: int, channels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class k has a bright band at rows 2k..2k+1, plus noise: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count)
    images = rng.integers(0, 60, (count, size, size, channels))
    for index, label in enumerate(labels):
        images[index, 2 * label: 2 * label + 2] = 255
    return images.astype(np.uint8), labels.astype(np.uint8)


def _fashion_files(root):
    root.mkdir()
    for split, count in (("train", 256), ("t10k", 128)):
        images, labels = learnable_images(count, 28, 1, seed=len(split))
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images[..., 0])
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


@pytest.fixture
def fashion_root(tmp_path):
    return _fashion_files(tmp_path / "fashion-mnist")


@pytest.fixture(scope="module")
def shared_fashion_root(tmp_path_factory):
    """The same files, shared by a module's tests (which must not modify them)."""
    return _fashion_files(tmp_path_factory.mktemp("shared") / "fashion-mnist")


@pytest.fixture
def cifar_root(tmp_path):
    """torchvision's python-format CIFAR-10 batches (tiny)."""
    base = tmp_path / "cifar" / "cifar-10-batches-py"
    base.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for index, name in enumerate(names):
        images, labels = learnable_images(8, 32, 3, seed=index)
        batch = {"data": images.transpose(0, 3, 1, 2).reshape(8, -1), "labels": labels.tolist()}
        with open(base / name, "wb") as handle:
            pickle.dump(batch, handle)
    with open(base / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, handle)
    return tmp_path / "cifar"
