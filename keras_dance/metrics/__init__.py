"""Metrics of saliency maps (formulas in each function's docstring)."""

from keras_dance.metrics.deletion import deletion, insertion

__all__ = ["deletion", "insertion"]
