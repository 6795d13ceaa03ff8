"""The timm-style classifier head shared by the project's model classes."""

from __future__ import annotations

import torch
from timm.layers import create_classifier
from torch import nn


class ClassifierHeadMixin:
    """``global_pool`` -> ``head_drop`` -> ``fc`` over ``forward_features``, with timm's head API.

    The class sets ``num_features`` and calls :meth:`_init_head` in its constructor.
    """

    num_features: int
    num_classes: int

    def _init_head(self, num_classes: int, drop_rate: float, global_pool: str) -> None:
        self.num_classes = num_classes
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool)
        self.head_drop = nn.Dropout(drop_rate)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str = "avg") -> None:
        self.num_classes = num_classes
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.global_pool(x))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
