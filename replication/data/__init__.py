"""Datasets of the paper's settings: CIFAR-10/100 and ImageNet (real on-disk formats), and
Fashion-MNIST from Debian's dataset-fashion-mnist for the embedded default.

``build_datasets(DataConfig(...))`` returns train / test datasets with each setting's standard
augmentation; a missing dataset raises :class:`DatasetNotFoundError` saying where it looked and how to
provide the data; a malformed file (truncated, bad header, a label outside the class range) raises
:class:`DatasetFormatError` naming the file.
"""

from .datasets import DataConfig, DatasetInfo, build_datasets
from .errors import DatasetFormatError, DatasetNotFoundError
from .fashion_mnist import FashionMNIST, read_idx
from .specs import DATASET_SPECS, DATASETS, DatasetSpec, dataset_spec

__all__ = ["DATASETS", "DATASET_SPECS", "DataConfig", "DatasetFormatError", "DatasetInfo", "DatasetNotFoundError",
           "DatasetSpec", "FashionMNIST", "build_datasets", "dataset_spec", "read_idx"]
