"""Training and evaluation: presets of the paper's recipes, a resumable DDP-ready engine."""

from .engine import TrainConfig, evaluate, train
from .presets import PRESETS, Preset, get_preset

__all__ = ["PRESETS", "Preset", "TrainConfig", "evaluate", "get_preset", "train"]
