"""The real loaders read files in the real formats, and a missing dataset gets one clear message."""

import pytest
import torch

from replication.data import (
    DataConfig,
    DatasetFormatError,
    DatasetNotFoundError,
    FashionMNIST,
    build_datasets,
    read_idx,
)


def test_fashion_mnist_idx_files_are_read(fashion_root):
    train, test, info = build_datasets(DataConfig("fashion_mnist", root=str(fashion_root), image_size=32))
    assert (len(train), len(test)) == (256, 128)
    image, label = train[0]
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32 and 0 <= label < 10
    assert info.num_classes == 10 and info.in_chans == 1 and info.image_size == 32


def test_subsets_are_deterministic(fashion_root):
    config = DataConfig("fashion_mnist", root=str(fashion_root), train_subset=50, test_subset=20, augment=False)
    first, _, _ = build_datasets(config)
    second, _, _ = build_datasets(config)
    assert len(first) == 50 and first.indices == second.indices


def test_cifar_format_files_are_read_by_torchvision(cifar_root):
    config = DataConfig("cifar10", root=str(cifar_root), verify_checksums=False)
    train, test, info = build_datasets(config)
    assert (len(train), len(test)) == (40, 8)
    image, label = train[3]
    assert image.shape == (3, 32, 32) and info.num_classes == 10


def test_cifar_files_with_other_checksums_are_refused_by_default(cifar_root):
    with pytest.raises(DatasetNotFoundError, match="corrupted"):
        build_datasets(DataConfig("cifar10", root=str(cifar_root)))


def test_imagenet_folder_layout(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("n01", "n02"):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            Image.new("RGB", (40, 30), color=(10, 200, 30)).save(folder / "a.JPEG")
    train, val, info = build_datasets(DataConfig("imagenet", root=str(tmp_path), image_size=32))
    assert len(train) == 2 and val[0][0].shape == (3, 32, 32) and info.num_classes == 1000


@pytest.mark.parametrize("name", ["fashion_mnist", "cifar10", "cifar100", "imagenet"])
def test_missing_dataset_says_where_it_looked(tmp_path, name):
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path)):
        build_datasets(DataConfig(name, root=str(tmp_path / "nowhere")))


def test_unknown_dataset_is_named():
    with pytest.raises(ValueError, match="mnist_digits"):
        DataConfig("mnist_digits")


def test_truncated_idx_file_is_reported(tmp_path, fashion_root):
    data = (fashion_root / "train-images-idx3-ubyte.gz").read_bytes()
    import gzip

    raw = gzip.decompress(data)
    (tmp_path / "cut").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "cut")


def test_debian_package_location_is_the_default():
    from replication.data.fashion_mnist import DEFAULT_ROOT

    assert str(DEFAULT_ROOT) == "/usr/share/datasets/fashion-mnist"
    if DEFAULT_ROOT.exists():
        assert len(FashionMNIST(train=False)) == 10000


# Malformed files: one DatasetFormatError naming the file (was EOFError / struct.error, no file name).

def test_truncated_gzip_stream_names_the_file(fashion_root):
    path = fashion_root / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-200])  # the gzip stream ends early
    with pytest.raises(DatasetFormatError, match=f"{path}.*truncated"):
        build_datasets(DataConfig("fashion_mnist", root=str(fashion_root)))


@pytest.mark.parametrize("keep", [2, 10])  # shorter than the magic; magic but half the 3-d header
def test_short_idx_header_names_the_file(fashion_root, keep):
    import gzip

    path = fashion_root / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:keep]))
    with pytest.raises(DatasetFormatError, match=f"{path}.*(magic|header is truncated)"):
        FashionMNIST(fashion_root, train=False)


def _write_idx(path, array) -> None:
    import gzip
    import struct

    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype("uint8").tobytes()))


def test_labels_of_the_wrong_rank_are_refused(fashion_root):
    import numpy as np

    _write_idx(fashion_root / "t10k-labels-idx1-ubyte.gz", np.zeros((128, 2), dtype=np.uint8))
    with pytest.raises(DatasetFormatError, match="t10k-labels-idx1-ubyte.gz: expected a 1-d"):
        FashionMNIST(fashion_root, train=False)


# Labels outside the class range (was: accepted, and training crashed or a CUDA assert fired later).

def test_fashion_mnist_label_out_of_range_names_file_and_label(fashion_root):
    import gzip

    import numpy as np

    path = fashion_root / "train-labels-idx1-ubyte.gz"
    labels = np.frombuffer(gzip.decompress(path.read_bytes())[8:], dtype=np.uint8).copy()
    labels[17] = 200
    _write_idx(path, labels)
    with pytest.raises(DatasetFormatError, match=rf"{path}: label 200 at index 17 is outside the 10 classes"):
        build_datasets(DataConfig("fashion_mnist", root=str(fashion_root)))


def test_cifar_label_out_of_range_names_the_batch_file(cifar_root):
    import pickle

    path = cifar_root / "cifar-10-batches-py" / "data_batch_3"
    batch = pickle.loads(path.read_bytes())
    batch["labels"][5] = 200
    path.write_bytes(pickle.dumps(batch))
    with pytest.raises(DatasetFormatError, match=r"data_batch_3: label 200 at index 5 is outside the 10 classes"):
        build_datasets(DataConfig("cifar10", root=str(cifar_root), verify_checksums=False))


def test_truncated_cifar_batch_names_the_file(cifar_root):
    path = cifar_root / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DatasetFormatError, match="test_batch: not a readable CIFAR batch"):
        build_datasets(DataConfig("cifar10", root=str(cifar_root), verify_checksums=False))


def test_imagenet_splits_with_other_classes_are_refused(tmp_path):
    """ImageFolder numbers each split's folders on its own: a class missing from val shifts its labels."""
    from PIL import Image

    for split, classes in (("train", ("n01", "n02", "n03")), ("val", ("n01", "n03"))):
        for cls in classes:
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(folder / "a.JPEG")
    with pytest.raises(DatasetFormatError, match="only in train: \\['n02'\\]"):
        build_datasets(DataConfig("imagenet", root=str(tmp_path), image_size=8))


def test_data_modules_do_not_import_each_other_in_a_circle():
    """fashion_mnist imported DatasetNotFoundError from datasets, which imports fashion_mnist."""
    import ast
    from pathlib import Path

    import replication.data as package

    folder = Path(package.__file__).parent
    graph = {}
    for path in folder.glob("*.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                imported.add(node.module.split(".")[0])
        graph[path.stem] = imported

    def reaches(start, goal, seen=()):
        return any(n == goal or (n not in seen and reaches(n, goal, (*seen, n))) for n in graph.get(start, ()))

    assert not [name for name in graph if name != "__init__" and reaches(name, name)]
