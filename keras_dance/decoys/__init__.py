"""The decoy engine (DANCE): swappable patches, the constrained solver, cropping, and the
aggregation of the decoys' maps."""

from keras_dance.decoys import aggregate, masks
from keras_dance.decoys.config import DecoyConfig
from keras_dance.decoys.solver import DecoyEngine

__all__ = ["DecoyConfig", "DecoyEngine", "aggregate", "masks"]
