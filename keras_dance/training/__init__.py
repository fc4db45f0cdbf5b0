"""Training methods that make saliency maps more trustworthy."""

from keras_dance.training.scaat import SCAAT

__all__ = ["SCAAT"]
