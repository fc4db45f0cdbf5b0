"""Input adaptation: how a user's input becomes the tensor every method differentiates.

The explainer attributes with respect to what users display and feed: the raw input,
before the user's ``preprocess`` (e.g. pixels in [0, 255] before
``keras.applications.resnet50.preprocess_input``). This module reads the model's input
shape (or takes it, for subclassed models), refuses inputs that cannot be differentiated
(integer token ids, a graph that cuts the gradient) instead of returning zero maps, and
builds ``forward(x) = logits(model(preprocess(x)))``. Later adaptations (token
embeddings) belong here too.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_dance._graph import graph_io
from keras_dance._logits import LogitsModel
from keras_dance.methods.base import ModelFunction


class InputAdapter:
    """The model seen from the explainer: raw inputs in, logits out.

    Args:
        model: a built ``keras.Model``: functional or Sequential with one input, or any
            model callable on a batch (subclassed) when ``input_shape`` is given.
        input_shape: the input shape without the batch axis; required when it cannot be
            read from the model, and fills a functional model's ``None`` axes. Defaults
            to None.
        preprocess: a callable applied to the inputs inside the compiled graph, before the
            model; the gradient flows through it. Defaults to None.

    Attributes:
        input_shape: the shape of one input.
        num_classes: the size of the class axis, or None (no single class axis).
        output_shapes: the shape of each output (batch axis included).
        logits: the ``LogitsModel`` (output activations removed on a private copy).
        forward: ``ModelFunction`` ``x -> logits(model(preprocess(x)))``.
        has_graph: whether the model is functional or Sequential (layers can be named).

    Raises:
        TypeError / ValueError: a model or argument that cannot be explained, naming it.
    """

    def __init__(self, model, input_shape=None, preprocess=None):
        if not isinstance(model, keras.Model):
            raise TypeError(
                f"Expected `model` to be a keras.Model. Received: model of type "
                f"{type(model).__name__}"
            )
        if not model.built:
            raise ValueError(
                "Expected a built model (call it on a batch or build it first; the explainer "
                "never builds or changes your model). Received: an unbuilt model "
                f"{model.name!r}"
            )
        if preprocess is not None and not callable(preprocess):
            raise TypeError(
                f"Expected `preprocess` to be a callable or None. Received: "
                f"preprocess={preprocess!r}"
            )
        self.model = model
        self.preprocess = preprocess
        io = graph_io(model)
        self.has_graph = io is not None
        if self.has_graph:
            inputs = io[0]
            if len(inputs) != 1:
                raise ValueError(
                    "Expected a model with exactly one input. Received: model with "
                    f"{len(inputs)} inputs"
                )
            _check_dtype(inputs[0].dtype)
            declared = tuple(inputs[0].shape[1:])
            self.input_shape = _merge_shapes(declared, input_shape)
        else:
            if input_shape is None:
                raise ValueError(
                    f"Expected `input_shape` for a model whose input shape cannot be read "
                    f"(a subclassed keras.Model, {type(model).__name__}): e.g. "
                    "kd.Explainer(model, input_shape=(32, 32, 3)). Received: input_shape=None"
                )
            self.input_shape = _shape(input_shape)
        self.logits = LogitsModel(model)
        outputs = self._probe()
        self.output_shapes = outputs
        single = len(outputs) == 1 and len(outputs[0]) >= 2 and outputs[0][-1] is not None
        self.num_classes = int(outputs[0][-1]) if single else None
        self.forward = ModelFunction(self._forward, self.num_classes)

    def prepare(self, x):
        """Raw inputs as the model takes them: ``preprocess(x)``, or ``x`` without one."""
        if self.preprocess is None:
            return x
        # A tensor, never a numpy array: Keras's preprocess_input edits arrays in place.
        return self.preprocess(tf.convert_to_tensor(x, tf.float32))

    def _forward(self, x):
        # Mixed precision: float16 logits become float32 (the cast is differentiable).
        return tf.nest.map_structure(lambda t: tf.cast(t, tf.float32),
                                     self.logits(self.prepare(x)))

    def model_outputs(self, x):
        """The user's model on raw inputs (serving predictions): ``model(preprocess(x))``."""
        return self.model(self.prepare(x), training=False)

    def _probe(self):
        """The output shapes; refuses a model the gradient cannot pass through.

        One probe input is differentiated (when the input shape is fully known): a None
        gradient means every map would be zero, so the explainer raises instead.
        """
        if any(n is None for n in self.input_shape):
            return [tuple(o.shape) for o in self.logits.model.outputs]
        x = tf.constant(np.random.default_rng(0).uniform(
            size=(1,) + self.input_shape).astype(np.float32))
        with tf.GradientTape() as tape:
            tape.watch(x)
            try:
                outputs = tf.nest.flatten(self._forward(x))
            except Exception as error:  # a shape or dtype the model cannot take
                raise ValueError(
                    f"Expected the model to accept float32 inputs of shape "
                    f"{(None,) + self.input_shape}"
                    f"{' after `preprocess`' if self.preprocess is not None else ''}. "
                    f"Received: calling it raised {type(error).__name__}: {error}"
                ) from error
            total = tf.add_n([tf.reduce_sum(tf.cast(o, tf.float32)) for o in outputs])
        if tape.gradient(total, x) is None:
            raise ValueError(
                "Expected a model whose outputs can be differentiated with respect to its "
                "input; the gradient is None (the graph casts the input to integers, stops "
                "the gradient, or ignores the input), so every map would be zero. Received: "
                f"model {self.model.name!r}"
            )
        if not self.has_graph:
            _refuse_probabilities(outputs, self.model)
        return [tuple(o.shape) for o in outputs]


def _check_dtype(dtype):
    dtype = tf.as_dtype(dtype)
    if not dtype.is_floating:
        raise ValueError(
            "Expected a model with a floating-point input: saliency is a gradient with "
            "respect to the input, which does not exist for integer inputs (e.g. token ids "
            "fed to an Embedding; maps would be all zeros). Received: a model input of "
            f"dtype {dtype.name}"
        )


def _refuse_probabilities(outputs, model):
    """A subclassed model's softmax cannot be removed on a copy: refuse probabilities."""
    flat = outputs
    if len(flat) != 1 or len(flat[0].shape) != 2 or flat[0].shape[-1] < 2:
        return
    values = flat[0].numpy().astype(np.float64)
    if values.min() >= 0 and np.allclose(values.sum(axis=-1), 1.0, atol=1e-5):
        raise ValueError(
            "Expected a subclassed model that returns logits: its outputs sum to 1 (a "
            "softmax), which cannot be removed on a copy of a subclassed model, and maps "
            "of probabilities saturate. Return the logits from call() (apply softmax "
            f"outside). Received: model {model.name!r} of type {type(model).__name__}"
        )


def _shape(value):
    try:
        shape = tuple(value)
    except TypeError:
        shape = None
    if not shape or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1
                        for n in shape):
        raise ValueError(
            "Expected `input_shape` to be a tuple of positive ints (one input, without "
            f"the batch axis). Received: input_shape={value!r}"
        )
    return tuple(int(n) for n in shape)


def _merge_shapes(declared, given):
    if given is None:
        return declared
    given = _shape(given)
    if len(given) != len(declared) or any(d is not None and d != g
                                          for d, g in zip(declared, given)):
        raise ValueError(
            f"Expected `input_shape` to match the model's input shape {declared}. "
            f"Received: input_shape={given}"
        )
    return given
