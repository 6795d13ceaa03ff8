"""timm's classifier-head interface for the project's own model classes (``reset_classifier``,
``forward_head``).

No ``from __future__ import annotations`` here or in the model files: TorchScript reads the
annotations of scripted methods and class attributes, and cannot read them as strings.
"""

from typing import TYPE_CHECKING

import torch
from timm.layers import create_classifier, get_device_dtype
from torch import nn

__all__ = ["ClassifierHeadMixin"]


class ClassifierHeadMixin:
    """``global_pool`` -> ``head_drop`` -> ``fc`` over ``forward_features``, with timm's head API.

    The layout of timm's ``ResNet`` head (``global_pool`` and ``fc`` from timm's ``create_classifier``,
    so state_dict keys stay ``fc.*``). The class sets ``num_features`` and calls :meth:`_init_head`.
    """

    num_features: int
    num_classes: int
    head_hidden_size: int
    if TYPE_CHECKING:  # provided by nn.Module and the model class; TorchScript never reads these
        training: bool

        def forward_features(self, x: torch.Tensor) -> torch.Tensor: ...

    def _init_head(self, num_classes: int, drop_rate: float, global_pool: str, device=None, dtype=None) -> None:
        self.num_classes = num_classes
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool,
                                                      device=device, dtype=dtype)
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()
        self.head_drop = nn.Dropout(drop_rate)

    @torch.jit.ignore
    def get_classifier(self, name_only: bool = False) -> str | nn.Module:
        return "fc" if name_only else self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """New classifier for ``num_classes`` (0: none); ``global_pool`` None keeps the current pooling."""
        dd = get_device_dtype(self)
        self.num_classes = num_classes
        if global_pool is None:
            global_pool = self.global_pool.pool_type
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool, **dd)
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()
        self.global_pool.train(self.training)
        self.fc.train(self.training)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.global_pool(x))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
