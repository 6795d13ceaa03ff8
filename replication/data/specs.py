"""What each dataset is: the one place that states its classes, channels, native size and the
per-channel mean / std its images are normalised with.

The data layer builds its transforms from these, the training runs record them, and the CLI, the
reports and the workflow schema take the dataset names from :data:`DATASETS`. ImageNet's statistics
are timm's constants, so a model's timm default cfg and this data layer normalise alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

__all__ = ["CIFAR10", "CIFAR100", "DATASETS", "DATASET_SPECS", "FASHION_MNIST", "IMAGENET", "DatasetSpec",
           "dataset_spec"]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's fixed facts. Labels run from 0 to ``num_classes - 1``; ``native_size`` is the image
    side (ImageNet: the usual 224 crop); ``mean`` / ``std`` have one entry per channel; ``paper_name`` is
    how the paper's tables name the dataset (None: the paper has no results on it)."""

    name: str
    num_classes: int
    in_chans: int
    native_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    paper_name: str | None = None

    def __post_init__(self) -> None:
        if not len(self.mean) == len(self.std) == self.in_chans:
            raise ValueError(f"dataset {self.name!r}: mean and std need one entry per channel ({self.in_chans})")

    def timm_cfg(self) -> dict[str, object]:
        """The fields of a timm default cfg that this dataset fixes: classes, input size, mean / std."""
        return {"num_classes": self.num_classes, "input_size": (self.in_chans, self.native_size, self.native_size),
                "mean": self.mean, "std": self.std}


CIFAR10 = DatasetSpec("cifar10", num_classes=10, in_chans=3, native_size=32,
                      mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), paper_name="CIFAR10")
CIFAR100 = DatasetSpec("cifar100", num_classes=100, in_chans=3, native_size=32,
                       mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762), paper_name="CIFAR100")
IMAGENET = DatasetSpec("imagenet", num_classes=1000, in_chans=3, native_size=224,
                       mean=tuple(IMAGENET_DEFAULT_MEAN), std=tuple(IMAGENET_DEFAULT_STD), paper_name="ImageNet")
FASHION_MNIST = DatasetSpec("fashion_mnist", num_classes=10, in_chans=1, native_size=28,
                            mean=(0.2860,), std=(0.3530,))

DATASET_SPECS: dict[str, DatasetSpec] = {spec.name: spec for spec in (CIFAR10, CIFAR100, IMAGENET, FASHION_MNIST)}
DATASETS = tuple(DATASET_SPECS)  # ("cifar10", "cifar100", "imagenet", "fashion_mnist")


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of dataset ``name``; an unknown name is a ValueError listing the known ones."""
    if name not in DATASET_SPECS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return DATASET_SPECS[name]
