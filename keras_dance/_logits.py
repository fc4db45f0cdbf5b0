"""The explainer's private copy of a model whose outputs are logits.

tf-keras-vis ``ReplaceToLinear`` sets the activation of a model's output layers to
linear, in place. We do the same on a copy in which only the output layers are new objects
(every other layer is shared with the user's model, so its weights are always current)
and copy the output layers' weights over before each use. The user's model is never
modified.
"""

import contextlib
import sys

import keras

from keras_dance import _validation


class _Linear(keras.layers.Layer):
    """Stands in for an output ``Softmax`` layer: returns its input (the logits)."""

    def call(self, inputs, mask=None):
        del mask
        return inputs


def _is_linear(activation):
    return activation is None or getattr(activation, "__name__", "") == "linear"


def output_layers(model):
    """The layers that produce a Sequential or Functional model's outputs."""
    if isinstance(model, keras.Sequential):
        return [model.layers[-1]]
    names = getattr(model, "output_names", None)
    if not names:
        return []
    return [model.get_layer(name) for name in names]


def _is_model(layer):
    return isinstance(layer, keras.Model) and bool(output_layers(layer))


def _nonlinear(layer):
    """Whether ``layer`` (an output layer) applies softmax/sigmoid …, nested models included."""
    if _is_model(layer):
        return needs_linear_copy(layer)
    return isinstance(layer, keras.layers.Softmax) or not _is_linear(
        getattr(layer, "activation", None))


def needs_linear_copy(model):
    """Whether any output layer applies a non-linear activation (softmax, sigmoid …),
    looking inside output layers that are models themselves (a Sequential head)."""
    return any(_nonlinear(layer) for layer in output_layers(model))


@contextlib.contextmanager
def _no_tensorflow_import():
    """On JAX and PyTorch, keeps Keras's serialisation from importing TensorFlow.

    ``Layer.get_config`` (reached by ``clone_model``) serialises the dtype policy through
    ``serialize_keras_object``, which asks its lazy ``tensorflow`` module whether
    TensorFlow is available (``isinstance(obj, tf.TensorShape)``), importing it wherever
    it is installed: the largest resident size of a JAX process explaining two digits
    went from 661 MB to 1146 MB with it (one run; the README). While TensorFlow is not imported no object can be a
    ``tf.TensorShape``, so the answer "unavailable" is exact for the duration; it is
    reset afterwards. Keras's private module is only read if it is there.
    """
    try:
        from keras.src.utils import module_utils
        lazy = module_utils.tensorflow
    except (ImportError, AttributeError):
        lazy = None
    if (lazy is None or keras.config.backend() == "tensorflow" or "tensorflow" in sys.modules
            or getattr(lazy, "_available", True) is not None):
        yield
        return
    lazy._available = False
    try:
        yield
    finally:
        if "tensorflow" not in sys.modules:
            lazy._available = None


def _linear_copy(model, prefix=""):
    """A copy of ``model`` whose output activations are linear, at any nesting depth.

    Only the output layers (and the nested models holding them) are new objects; every
    other layer is the user's. Returns ``(copy, [(clone, original) leaf layers], names)``.
    """
    originals = {id(layer): layer for layer in output_layers(model) if _nonlinear(layer)}
    pairs, replaced = [], []

    def clone_function(layer):
        if id(layer) not in originals:
            return layer  # shared: the user's layer, weights always current
        if _is_model(layer):
            clone, inner_pairs, inner_names = _linear_copy(layer, f"{prefix}{layer.name}/")
            pairs.extend(inner_pairs)
            replaced.extend(inner_names)
            return clone
        if isinstance(layer, keras.layers.Softmax):
            clone = _Linear(name=layer.name)
        else:
            clone = layer.__class__.from_config(layer.get_config())
        pairs.append((clone, layer))
        replaced.append(prefix + layer.name)
        return clone

    with _no_tensorflow_import():
        copy = keras.models.clone_model(model, clone_function=clone_function)
    # tf-keras-vis's ReplaceToLinear on the copy: each output layer's activation becomes
    # linear (written out: that package imports TensorFlow, which other backends lack).
    # Output layers that are models were copied the same way by the recursion above.
    # A Sequential copy may lack `output_names`: its last layer is its output.
    outputs = ([copy.layers[-1]] if isinstance(copy, keras.Sequential)
               else [copy.get_layer(name) for name in copy.output_names])
    for layer in outputs:
        if hasattr(layer, "activation") and not _is_model(layer):
            layer.activation = keras.activations.linear
    return copy, pairs, replaced


class LogitsModel:
    """A callable ``x -> logits`` for ``model`` with its output activations removed: the
    one logits wrapping the explainer, the metrics and SCAAT share.

    Output layers that are models themselves (``Sequential([base, head])`` with a softmax
    head) are copied the same way, at any depth. ``forward(x)`` is what gets
    differentiated: ``preprocess`` (inside the graph, on raw inputs), the logits model,
    float32 outputs.

    Args:
        model: a built Keras model (never changed).
        preprocess: a callable applied to raw inputs before the model, or None.

    Attributes:
        model: the Keras model that is differentiated (the user's model when its outputs
            are already linear, else the private copy).
        replaced: paths of the output layers whose activation was removed.

    Raises:
        TypeError: ``preprocess`` is not callable; a subclassed model whose output
            activation cannot be removed on a copy.
    """

    def __init__(self, model, preprocess=None):
        _validation.check_callable(preprocess, "preprocess")
        self.preprocess = preprocess
        self._pairs = []
        self.replaced = []
        if not needs_linear_copy(model):
            self.model = model
            return
        try:
            copy, self._pairs, self.replaced = _linear_copy(model)
        except Exception as error:  # subclassed models cannot be cloned
            raise TypeError(
                "Expected a Sequential or Functional model whose output activation can be "
                "removed on a copy (scores are taken on logits). Received: model of type "
                f"{type(model).__name__} ({error}). Remove the output activation yourself "
                "or pass a model that returns logits."
            ) from error
        if isinstance(copy, keras.Sequential):
            outputs = copy.outputs[0] if len(copy.outputs) == 1 else copy.outputs
            copy = keras.Model(copy.inputs[0], outputs, name=f"{model.name}_logits")
        self.model = copy
        self.sync()

    def sync(self):
        """Copies the user's current output-layer weights into the copy (a few KB)."""
        for clone, original in self._pairs:
            for mine, theirs in zip(clone.weights, original.weights):
                mine.assign(theirs)

    def __call__(self, x):
        return self.model(x, training=False)

    def prepare(self, x):
        """Raw inputs as the model takes them: ``preprocess(x)``, or ``x`` without one."""
        if self.preprocess is None:
            return x
        # A tensor, never a numpy array: Keras's preprocess_input edits arrays in place.
        return self.preprocess(keras.ops.convert_to_tensor(x, "float32"))

    def forward(self, x):
        """``x -> logits(model(preprocess(x)))``, every output float32 (mixed precision:
        float16 logits become float32; the cast is differentiable)."""
        return as_float32(self(self.prepare(x)))


def as_float32(outputs):
    """Every output of a (nested) structure as float32."""
    return keras.tree.map_structure(lambda t: keras.ops.cast(t, "float32"), outputs)
