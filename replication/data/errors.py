"""Errors of the data layer (each names the file or folder at fault and what is wrong with it), and
the label-range check every loader runs."""

from __future__ import annotations

import os

import torch


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not where it was looked for; the message says where and how to provide it."""


class DatasetFormatError(ValueError):
    """A dataset file is there but malformed: truncated, a wrong header, or labels outside the class
    range. The message names the file and the problem."""


def check_labels(labels: torch.Tensor, num_classes: int, source: str | os.PathLike, dataset: str) -> None:
    """Raise :class:`DatasetFormatError` naming ``source`` and the first bad label unless every label is
    in ``[0, num_classes)``. One vectorised comparison: cheap at load time."""
    bad = (labels < 0) | (labels >= num_classes)
    if bool(bad.any()):
        index = int(bad.nonzero()[0, 0])
        raise DatasetFormatError(
            f"{source}: label {int(labels[index])} at index {index} is outside the {num_classes} classes of "
            f"{dataset} (0 to {num_classes - 1}); {int(bad.sum())} of {labels.numel()} labels are out of range")
