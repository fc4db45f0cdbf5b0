"""Guided Backpropagation (Springenberg et al. 2015) — kept as a negative control."""

import keras

from keras_dance import backend
from keras_dance.methods.base import SaliencyMethod


class GuidedBackprop(SaliencyMethod):
    """The gradient with every ReLU's backward pass also zeroing negative gradients.

    **A negative control, not a recommendation.** Adebayo et al. (2018, "Sanity Checks
    for Saliency Maps") showed that Guided Backprop's maps barely change when the
    model's weights are randomised: they recover edges of the input more than the model's
    reasoning. keras-dance ships it so that the sanity checks can show that failure next
    to the methods that pass (docs/quality.md); do not use it to explain a decision.

    ReLUs are found as layers with ``activation="relu"``, ``keras.layers.ReLU()`` (plain)
    and ``Activation("relu")``, nested models included; the user's model is not changed
    (the guided backward pass is added around the layers' outputs on the fly).

    Example:
        >>> method = kd.methods.GuidedBackprop()
    """

    name = "guided_backprop"

    def check(self, forward):
        forward.with_output_hook("guided", _guide_relus)

    def __call__(self, x, forward, targets, budget=None):
        del budget
        guided = forward.with_output_hook("guided", _guide_relus)
        return backend.gradient(lambda rows: targets.score(guided(rows)), x)


def _is_relu(operation):
    activation = getattr(operation, "activation", None)
    if isinstance(operation, keras.layers.ReLU):
        config = operation.get_config()
        return not config.get("negative_slope") and config.get("max_value") is None
    return activation is keras.activations.relu or getattr(activation, "__name__", "") == "relu"


def _guide_relus(operation, outputs):
    """After each ReLU-activated output an identity passes back only positive gradients;
    the ReLU's own backward keeps the positions with positive input."""
    if _is_relu(operation):
        return [backend.positive_gradient(t) for t in outputs]
    return outputs
