"""Named training recipes of the paper's settings (hyper-parameters only; data and model are separate)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Preset:
    epochs: int
    batch_size: int                 # global batch, split across DDP processes
    lr: float
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "step"          # "step" (x gamma every step_size epochs) or "cosine"
    step_size: int = 60
    gamma: float = 0.1
    no_decay_on_norm_and_bias: bool = False
    label_smoothing: float = 0.0
    grad_clip: float | None = None  # max gradient norm; None: no clipping
    warmup_epochs: int = 0          # linear warm-up from lr / (warmup_epochs + 1) before the schedule
    description: str = ""

    def __post_init__(self) -> None:
        # A recipe reaches here from the CLI, the workflow config or code: one check for all of them.
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"training recipe: {name} must be a positive integer, got {value!r}")
        for name in ("lr", "momentum", "weight_decay"):
            value = getattr(self, name)
            # NaN fails `>= 0`, inf fails isfinite: either would train to NaN weights
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 \
                    or not math.isfinite(value):
                raise ValueError(f"training recipe: {name} must be a finite number >= 0, got {value!r}")


PRESETS: dict[str, Preset] = {
    # Paper section 4.1 (depth study, Figure 5).
    "cifar_depth_study": Preset(epochs=200, batch_size=256, lr=0.1, weight_decay=5e-4, schedule="step", step_size=60,
                                description="paper 4.1: batch 256, SGD lr 0.1, momentum 0.9, wd 5e-4, 200 epochs, "
                                            "lr x0.1 every 60 epochs"),
    # The official code's CIFAR recipe (Tables 1-2 CIFAR rows, pruning).
    "cifar_official": Preset(epochs=200, batch_size=128, lr=0.1, weight_decay=5e-4, schedule="cosine",
                             description="official code: batch 128, SGD lr 0.1, wd 5e-4, cosine, 200 epochs"),
    # RepVGG's ImageNet recipe as the official code uses it (Table 1 ImageNet rows, Table 3).
    "imagenet_repvgg": Preset(epochs=120, batch_size=256, lr=0.1, weight_decay=1e-4, schedule="cosine",
                              no_decay_on_norm_and_bias=True,
                              description="RepVGG / official code: 120 epochs, batch 256, lr 0.1 cosine, wd 1e-4 "
                                          "(none on BN and bias)"),
    # Fine-tuning after conversion (Appendix A.3); the paper plots 200 epochs.
    # Without BN a deep plain network is easily destabilised: gradients are clipped.
    "cifar_finetune": Preset(epochs=200, batch_size=128, lr=0.01, weight_decay=5e-4, schedule="cosine", grad_clip=1.0,
                             description="fine-tuning a converted model: lr 0.01 cosine, 200 epochs, grad norm <= 1"),
    # Evidence profile (config/evidence.yaml): a few epochs on a 2-core CPU. The one-epoch warm-up lets
    # the deepest plain networks (RepVGG 133) start without diverging; lr 0.05 because at 0.1 a
    # 4-epoch pilot's test accuracy swung by 20 points between epochs. Not a paper setting.
    "evidence": Preset(epochs=6, batch_size=128, lr=0.05, weight_decay=5e-4, schedule="cosine", warmup_epochs=1,
                       description="evidence profile (CPU, ~1 h): 6 epochs, batch 128, lr 0.05 cosine after a "
                                   "1-epoch linear warm-up; NOT a paper setting"),
    # Embedded default: minutes on a laptop CPU. Not a paper setting.
    "embedded": Preset(epochs=3, batch_size=64, lr=0.05, weight_decay=5e-4, schedule="cosine",
                       description="embedded default (CPU, minutes): 3 epochs, batch 64, lr 0.05 cosine; "
                                   "NOT a paper setting"),
}


def get_preset(name: str, **overrides: Any) -> Preset:
    """A preset by name, with fields overridden (e.g. ``epochs=2``); unknown names and fields are named."""
    if name not in PRESETS:
        raise ValueError(f"unknown training preset {name!r}; choose from {', '.join(PRESETS)}")
    preset = PRESETS[name]
    unknown = set(overrides) - set(preset.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown preset field(s) {', '.join(sorted(unknown))} for preset {name!r}")
    return replace(preset, **overrides)
