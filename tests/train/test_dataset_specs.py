"""DatasetSpec is the one statement of each dataset's facts."""

import pytest
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from replication.data import DATASETS, DataConfig, dataset_spec
from replication.report.paper_tables import PAPER_DATASET


def test_specs_state_the_known_facts():
    assert DATASETS == ("cifar10", "cifar100", "imagenet", "fashion_mnist")
    assert [dataset_spec(name).num_classes for name in DATASETS] == [10, 100, 1000, 10]
    assert [dataset_spec(name).native_size for name in DATASETS] == [32, 32, 224, 28]
    assert [dataset_spec(name).in_chans for name in DATASETS] == [3, 3, 3, 1]
    imagenet = dataset_spec("imagenet")
    assert (imagenet.mean, imagenet.std) == (tuple(IMAGENET_DEFAULT_MEAN), tuple(IMAGENET_DEFAULT_STD))
    assert PAPER_DATASET == {"cifar10": "CIFAR10", "cifar100": "CIFAR100", "imagenet": "ImageNet"}


def test_an_unknown_dataset_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown dataset 'svhn'; choose from cifar10, cifar100, imagenet"):
        DataConfig(name="svhn")
