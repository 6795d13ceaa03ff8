"""Dataset construction for every setting, with the paper's augmentations."""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import Dataset, Subset
from torchvision import datasets as tv_datasets, transforms as T

from .errors import DatasetFormatError, DatasetNotFoundError, check_labels
from .fashion_mnist import DEFAULT_ROOT as FASHION_ROOT, FashionMNIST
from .specs import DATASETS, IMAGENET, dataset_spec

__all__ = ["DATASETS", "DataConfig", "DatasetInfo", "build_datasets"]


@dataclass(frozen=True)
class DataConfig:
    """Which data, where, and how much. ``root`` None means the dataset's default location."""

    name: str = "fashion_mnist"
    root: str | None = None
    image_size: int | None = None       # None: the setting's native size (32, 224, 28)
    train_subset: int | None = None     # first-N deterministic subset (embedded default)
    test_subset: int | None = None
    download: bool = False              # CIFAR only, and only when asked
    verify_checksums: bool = True       # torchvision's CIFAR md5 check
    augment: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        dataset_spec(self.name)  # an unknown name is a ValueError naming the known ones

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], dataset: str, seed: int = 0) -> DataConfig:
        """The config of ``dataset`` under a workflow ``data`` section (roots, image_size, subsets, download)."""
        roots = data.get("roots", {}) or {}
        return cls(name=dataset, root=roots.get(dataset), image_size=data.get("image_size"),
                   train_subset=data.get("train_subset"), test_subset=data.get("test_subset"),
                   download=bool(data.get("download", False)), seed=seed)


@dataclass(frozen=True)
class DatasetInfo:
    num_classes: int
    in_chans: int
    image_size: int


class _CIFAR10(tv_datasets.CIFAR10):
    """torchvision's CIFAR-10, with the md5 check optional (files written by tests have other sums)."""

    verify_checksums = True

    def _check_integrity(self) -> bool:
        if self.verify_checksums:
            return super()._check_integrity()
        base = Path(self.root) / self.base_folder
        return all((base / name).is_file() for name, _ in self.train_list + self.test_list)

    def _load_meta(self) -> None:
        if self.verify_checksums:
            return super()._load_meta()
        path = Path(self.root) / self.base_folder / self.meta["filename"]
        if not path.is_file():
            raise RuntimeError(f"Dataset metadata file not found or corrupted: {path}")
        with open(path, "rb") as handle:
            self.classes = pickle.load(handle, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {name: index for index, name in enumerate(self.classes)}


class _CIFAR100(_CIFAR10, tv_datasets.CIFAR100):
    pass


def _transforms(name: str, size: int, train: bool, augment: bool) -> T.Compose:
    spec = dataset_spec(name)
    mean, std = spec.mean, spec.std
    if name == "imagenet":
        steps = ([T.RandomResizedCrop(size), T.RandomHorizontalFlip()] if train and augment
                 else [T.Resize(int(size * 256 / 224)), T.CenterCrop(size)])
    else:
        steps = [] if size == spec.native_size else [T.Resize(size)]
        if train and augment:
            steps += [T.RandomCrop(size, padding=size // 8), T.RandomHorizontalFlip()]
    return T.Compose(steps + [T.ToTensor(), T.Normalize(mean, std)])


def _subset(dataset: Dataset, count: int | None, seed: int) -> Dataset:
    size = len(cast(Sized, dataset))  # the map-style datasets built here all have a length
    if count is None or count >= size:
        return dataset
    generator = torch.Generator().manual_seed(seed)
    return Subset(dataset, torch.randperm(size, generator=generator)[:count].tolist())


def _cifar(config: DataConfig, size: int) -> tuple[Dataset, Dataset]:
    root = Path(config.root or "data")
    cls: type[_CIFAR10] = _CIFAR10 if config.name == "cifar10" else _CIFAR100
    folder = root / cls.base_folder
    try:
        made = []
        for train in (True, False):
            dataset = cls.__new__(cls)
            dataset.verify_checksums = config.verify_checksums
            # mypy resolves __init__ on this class object to object.__init__; it is CIFAR10's.
            cls.__init__(dataset, str(root), train=train, download=config.download,  # type: ignore[call-arg]
                         transform=_transforms(config.name, size, train, config.augment))
            made.append(dataset)
    except (pickle.UnpicklingError, EOFError) as error:  # a batch file that is there but truncated
        raise DatasetFormatError(f"{_unreadable_batch(folder, cls)}: not a readable CIFAR batch "
                                 f"({type(error).__name__}: {error}; truncated?)") from None
    except RuntimeError as error:
        if "not found or corrupted" not in str(error):
            raise
        raise DatasetNotFoundError(
            f"{config.name.upper()} not found (or corrupted) in {folder}: expected torchvision's python-format "
            f"batches there. Put the extracted archive under {root} (data root), or allow download=True where "
            "the network permits it.") from None
    for dataset in made:
        _check_cifar_labels(dataset, config.name)
    return made[0], made[1]


def _unreadable_batch(folder: Path, cls: type[tv_datasets.CIFAR10]) -> Path:
    """The first of the dataset's batch files in ``folder`` that does not unpickle (error path only)."""
    for name in [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]:
        path = folder / name
        try:
            with open(path, "rb") as handle:
                pickle.load(handle, encoding="latin1")
        except Exception:  # noqa: BLE001  (any failure marks the file)
            return path
    return folder


def _check_cifar_labels(dataset: tv_datasets.CIFAR10, name: str) -> None:
    """Every label in range, else an error naming the batch file that holds the first bad one."""
    labels = torch.as_tensor(dataset.targets)
    num_classes = dataset_spec(name).num_classes
    try:
        check_labels(labels, num_classes, Path(dataset.root) / dataset.base_folder, name.upper())
    except DatasetFormatError:
        # Error path only: find which batch file holds the first bad label (torchvision concatenates them).
        bad = int(((labels < 0) | (labels >= num_classes)).nonzero()[0, 0])
        start = 0
        for filename, _ in (dataset.train_list if dataset.train else dataset.test_list):
            path = Path(dataset.root) / dataset.base_folder / filename
            with open(path, "rb") as handle:
                entry = pickle.load(handle, encoding="latin1")
            count = len(entry.get("labels", entry.get("fine_labels", [])))
            if start <= bad < start + count:
                check_labels(labels[start:start + count], num_classes, path, name.upper())
            start += count
        raise


def _imagenet(config: DataConfig, size: int) -> tuple[Dataset, Dataset]:
    root = Path(config.root or "data/imagenet")
    made = []
    for split, train in (("train", True), ("val", False)):
        folder = root / split
        if not folder.is_dir():
            raise DatasetNotFoundError(
                f"ImageNet {split} split not found at {folder}: expected an ImageFolder layout "
                f"({folder}/<class>/<image>.JPEG). Point the data root at the folder holding train/ and val/.")
        transform = _transforms("imagenet", size, train, config.augment)
        made.append(tv_datasets.ImageFolder(str(folder), transform=transform))
    # ImageFolder numbers the classes of each split by its own sorted folder names: a class missing
    # from one split would shift every later label of the other, and more than 1000 folders would give
    # labels beyond the classifier.
    train_classes, val_classes = made[0].classes, made[1].classes
    classes = IMAGENET.num_classes
    if len(train_classes) > classes:
        raise DatasetFormatError(f"{root / 'train'} holds {len(train_classes)} class folders; ImageNet has "
                                 f"{classes}, so labels {classes} and above would be "
                                 f"out of range (first extra folder: {train_classes[classes]!r})")
    if val_classes != train_classes:
        only_train = sorted(set(train_classes) - set(val_classes))[:5]
        only_val = sorted(set(val_classes) - set(train_classes))[:5]
        raise DatasetFormatError(f"{root / 'val'} and {root / 'train'} hold different class folders (only in "
                                 f"train: {only_train}, only in val: {only_val}), so the same label would name "
                                 "different classes in the two splits")
    return made[0], made[1]


def build_datasets(config: DataConfig) -> tuple[Dataset, Dataset, DatasetInfo]:
    """Train and test datasets with the setting's augmentation, plus class count, channels and size."""
    spec = dataset_spec(config.name)
    size = config.image_size or spec.native_size
    if config.name in ("cifar10", "cifar100"):
        train, test = _cifar(config, size)
    elif config.name == "imagenet":
        train, test = _imagenet(config, size)
    else:
        root = Path(config.root) if config.root else FASHION_ROOT
        train = FashionMNIST(root, True, _transforms("fashion_mnist", size, True, config.augment))
        test = FashionMNIST(root, False, _transforms("fashion_mnist", size, False, config.augment))
    train = _subset(train, config.train_subset, config.seed)
    test = _subset(test, config.test_subset, config.seed + 1)
    return train, test, DatasetInfo(num_classes=spec.num_classes, in_chans=spec.in_chans, image_size=size)

