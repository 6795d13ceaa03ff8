"""Measuring models: parameter and MAC counts (and, later, throughput)."""

from .counting import ModelCounts, count_macs, count_params, layer_summary

__all__ = ["ModelCounts", "count_macs", "count_params", "layer_summary"]
