"""The decoy engine (DANCE): swappable patches, the constrained solver, cropping."""

from keras_dance.decoys.config import DecoyConfig
from keras_dance.decoys.solver import DecoyEngine

__all__ = ["DecoyConfig", "DecoyEngine"]
