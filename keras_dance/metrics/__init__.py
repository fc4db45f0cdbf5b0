"""Metrics of saliency maps (formulas in each function's docstring)."""

from keras_dance.metrics.deletion import deletion, insertion
from keras_dance.metrics.fidelity import fidelity
from keras_dance.metrics.localisation import pointing_game, relevance_mass
from keras_dance.metrics.sensitivity import sensitivity
from keras_dance.metrics.sparseness import sparseness

__all__ = ["deletion", "fidelity", "insertion", "pointing_game", "relevance_mass",
           "sensitivity", "sparseness"]
