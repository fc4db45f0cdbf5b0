"""Gradient ⊙ Input (Shrikumar et al. 2016)."""

from keras_dance.methods.base import SaliencyMethod, score_gradients


class GradientXInput(SaliencyMethod):
    """Gradient ⊙ Input: ``E(x) = x ∘ d F^c(x) / d x``.

    Complete for linear models without bias (the map sums to the score), which is what
    the competition wrapper (CGI) relies on.

    Example:
        >>> import keras_dance as kd
        >>> method = kd.methods.GradientXInput()
    """

    name = "gradient_x_input"

    @property
    def is_complete(self):
        return True

    def __call__(self, x, forward, targets, budget=None):
        del budget
        return x * score_gradients(x, forward, targets)
