"""Vanilla gradient (Simonyan et al. 2014)."""

from keras_dance.methods.base import SaliencyMethod, score_gradients


class Gradient(SaliencyMethod):
    """Vanilla gradient: ``E(x) = d F^c(x) / d x``, signed and unnormalised.

    Example:
        >>> import keras_dance as kd
        >>> method = kd.methods.Gradient()
    """

    name = "gradient"

    def __call__(self, x, forward, targets, max_expansion=None):
        del max_expansion
        return score_gradients(x, forward, targets)
