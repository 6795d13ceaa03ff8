"""Measuring models: parameter and MAC counts (and, later, throughput)."""

from .counting import count_macs, count_params, layer_summary

__all__ = ["count_macs", "count_params", "layer_summary"]
