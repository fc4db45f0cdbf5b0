"""Guided Backpropagation (Springenberg et al. 2015) — kept as a negative control."""

import warnings

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
        """Refuses a model with no ReLU to guide (GELU transformers: the map would be the
        plain gradient, silently) and warns about ReLUs inside custom layers, which the
        graph hook does not reach."""
        forward.with_output_hook("guided", _guide_relus)
        layers = forward.layers()
        guided = [path for path, layer, node in layers if node and _is_relu(layer)]
        inside = [path for path, layer, node in layers if not node and _is_relu(layer)]
        if not guided:
            raise ValueError(
                "Expected a model with ReLU layers for Guided Backprop to guide: without "
                "one its map is the plain gradient. Received: a model with no ReLU layer "
                "in its graph"
                + (f" (ReLUs inside custom layers are not reached: {', '.join(inside)})"
                   if inside else " (e.g. a GELU transformer)")
                + "; use method='gradient' for that map")
        if inside:
            warnings.warn(
                f"Guided Backprop guides the {len(guided)} ReLU layers of the model's graph "
                f"but not the {len(inside)} inside custom layers ({', '.join(inside[:5])}"
                f"{', …' if len(inside) > 5 else ''}): their backward pass stays the plain "
                "gradient's.", stacklevel=2)

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
