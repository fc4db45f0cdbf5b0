"""Guided Backpropagation (Springenberg et al. 2015) — kept as a negative control."""

import tensorflow as tf

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
        forward.guided()

    def __call__(self, x, forward, targets, max_expansion=None):
        del max_expansion
        guided = forward.guided()
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(targets.score(guided(x)))
        return tape.gradient(total, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)
