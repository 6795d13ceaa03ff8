"""The real loaders read files in the real formats, and a missing dataset gets one clear message."""

import pytest
import torch

from replication.data import DataConfig, DatasetNotFoundError, FashionMNIST, build_datasets, read_idx


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
