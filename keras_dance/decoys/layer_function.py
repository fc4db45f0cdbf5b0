"""``F_l``: the user's model up to the decoy layer, on the explainer's inputs."""

import keras

from keras_dance import _graph

class LayerFunction:
    """``x -> F_l(x)`` on the explainer's inputs: ``prepare`` (the explainer's input
    adaptation, ``ModelView.prepare``), then the layers.

    Attributes:
        graph: the ``kd._graph.GraphFunction`` when the layer is part of a functional
            graph (cropping can analyse it), else None (a user callable).
        name: the layer's path (``"outer/inner"``) or the callable's name.
    """

    def __init__(self, model, layer, prepare=None, start=None):
        self.prepare = prepare
        if callable(layer) and not isinstance(layer, keras.layers.Layer):
            self.graph, self._fn = None, layer
            self.name = getattr(layer, "__name__", type(layer).__name__)
            return
        if _graph.graph_io(model) is None:
            raise ValueError(
                "Expected `DecoyConfig.layer` to be a callable `x -> F_l(x)` for a model "
                "without a functional graph (a subclassed keras.Model): DANCE needs an "
                "intermediate layer's output, which such a model does not expose. Build the "
                "model with the functional API, or pass e.g. "
                "`layer=lambda x: model.features(x)` (it runs without receptive-field "
                f"cropping). Received: layer={layer!r} for model of type "
                f"{type(model).__name__}"
            )
        # start: the layers down to the one whose output is the explainer's input space
        # (an Embedding for token models); F_l is computed from there.
        self.graph = _graph.GraphFunction(model, _graph.resolve(model, layer), start)
        self._fn = self.graph
        self.name = self.graph.name

    def __call__(self, x, training=False):
        if self.prepare is not None:
            x = self.prepare(x)
        out = self.graph(x, training=training) if self.graph is not None else self._fn(x)
        return keras.ops.cast(out, "float32")  # mixed precision: the constraint in float32
