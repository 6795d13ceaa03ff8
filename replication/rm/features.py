"""The plain form of a feature extractor (timm ``features_only``): one chain of layers, several outputs.

timm's ``features_only=True`` wraps a model (``FeatureListNet``, ``EfficientNetFeatures``) so that its
forward returns the feature maps after some of its stages. Its RM form is the same plain chain as the
classifier's, cut after the last tapped stage, returning the activations after the tapped layers.
"""

import torch
from torch import nn


class PlainFeatures(nn.Sequential):
    """``nn.Sequential`` whose forward returns the outputs of the layers at ``taps`` (indices into it),
    in order, as a list: the converted form of a timm ``features_only`` model.

    The layers are those of a plain network (as :func:`replication.rm.convert` returns); state_dict keys
    are those of an ``nn.Sequential`` over them. Scripts with TorchScript and exports with ``torch.export``
    and to ONNX (one output per tap).
    """

    taps: list[int]

    def __init__(self, layers: list[nn.Module], taps: list[int]) -> None:
        super().__init__(*layers)
        taps = [int(t) for t in taps]
        if not taps or sorted(set(taps)) != taps or taps[0] < 0 or taps[-1] >= len(layers):
            raise ValueError(f"taps must be increasing layer indices in [0, {len(layers)}), got {taps}")
        self.taps = taps
        for tap in taps:  # an in-place layer right after a tap would overwrite the feature it returns
            if tap + 1 < len(layers) and getattr(layers[tap + 1], "inplace", False):
                layers[tap + 1].inplace = False  # type: ignore[assignment]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features: list[torch.Tensor] = []
        index = 0
        for layer in self:
            x = layer(x)
            if index in self.taps:
                features.append(x)
            index += 1
        return features

    def extra_repr(self) -> str:
        return f"taps={self.taps}"
