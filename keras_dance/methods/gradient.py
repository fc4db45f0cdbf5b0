"""Vanilla gradient (Simonyan et al. 2014)."""

from keras_dance.methods.base import SaliencyMethod, score_gradients


class Gradient(SaliencyMethod):
    """Vanilla gradient: ``E(x) = d F^c(x) / d x``, signed and unnormalised.

    Example:
        >>> import keras_dance as kd
        >>> method = kd.methods.Gradient()
    """

    name = "gradient"

    def __call__(self, x, forward, targets, budget=None):
        del budget
        return score_gradients(x, forward, targets)
