"""The saliency-method protocol and the one gradient primitive every method uses."""

import tensorflow as tf


class ModelFunction:
    """``forward(x) -> logits`` plus the class count methods need for their budgets.

    Args:
        fn: a callable from a batch of inputs to the model's logits.
        num_classes: the size of the class axis, or None (no class axis).
        input_shape: the shape of one input ``x`` (``None`` axes unknown), or None.
    """

    def __init__(self, fn, num_classes, layer_forward=None, guided=None, input_shape=None):
        self.fn = fn
        self.num_classes = num_classes
        self.input_shape = None if input_shape is None else tuple(input_shape)
        self._layer_forward = layer_forward
        self._guided = guided

    def __call__(self, x):
        return self.fn(x)

    def layer_forward(self, layer):
        """``x -> (activations of layer, logits)`` in one pass (CAM methods); ``layer``
        as ``DecoyConfig.layer`` takes it, or None for the last layer with spatial axes.

        Raises:
            ValueError: the model's graph cannot be read, or ``layer`` is unknown.
        """
        if self._layer_forward is None:
            raise ValueError(
                "Expected a functional or Sequential model (whose layers can be read) for a "
                "method that reads a layer's activations (the CAM family). Received: a "
                "model without a readable layer graph")
        return self._layer_forward(layer)

    def guided(self):
        """``x -> logits`` whose ReLUs pass back only positive gradients (Guided
        Backprop); the forward values are the model's.

        Raises:
            ValueError: the model's graph cannot be read.
        """
        if self._guided is None:
            raise ValueError(
                "Expected a functional or Sequential model (whose layers can be read) for "
                "Guided Backprop. Received: a model without a readable layer graph")
        return self._guided()


class SaliencyMethod:
    """Base class of saliency methods: settings only, no model.

    A method is called as ``method(x, forward, targets, max_expansion=None)`` and returns
    maps of ``x``'s shape, using only TensorFlow ops so that it traces under
    ``tf.function`` (and XLA):

    - ``x``: float32 tensor ``(B, *features)``.
    - ``forward``: ``forward(x) -> outputs`` (the model's logits).
    - ``targets``: an object with ``score(outputs) -> (rows,)`` and ``tile(k)`` (see
      ``keras_dance._targets``).
    - ``max_expansion``: at most this many expanded rows per input in one forward and
      backward pass (``None``: no limit). Methods that expand the batch (noise samples,
      integration steps, classes) loop over chunks to honour it.

    Subclasses set ``name``, implement ``expansion`` (rows per input when nothing is
    chunked), ``__call__`` and ``get_config``.
    """

    name = None
    #: Whether ``METHOD_NAMES`` lists the name (False for a wrapper whose name alone
    #: repeats a listed method: "competitive" is "cgi").
    listed = True
    #: Whether the method reads a layer's activations and takes ``layer=`` (the CAM
    #: family): the command line's ``--layer`` goes to these.
    takes_layer = False
    #: Whether the method differentiates the model (False: it needs only ``model(x)``).
    needs_gradients = True

    def expansion(self, num_classes):
        """Rows evaluated per input by one unchunked call."""
        del num_classes
        return 1

    def __call__(self, x, forward, targets, max_expansion=None):
        raise NotImplementedError

    @property
    def is_complete(self):
        """Whether the attributions sum to the score (minus a baseline's score)."""
        return False

    @property
    def needs_class_indices(self):
        """Whether targets must be class indices (not a score function)."""
        return False

    def check(self, forward):
        """Raises early (when the explainer is built) for settings the model cannot
        take, e.g. a CAM layer that does not exist. Does nothing by default."""
        del forward

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        settings = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({settings})"


def score_gradients(x, forward, targets):
    """Gradient of each row's score with respect to that row: ``d score_r / d x_r``.

    Rows are independent (inference mode, no batch statistics), so the gradient of the
    summed score gives every row's own gradient in one backward pass.
    """
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(targets.score(forward(x)))
    return tape.gradient(total, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)


def expand(x, copies):
    """``(B, *f) -> (copies * B, *f)``, copy-major (matches ``Targets.tile``)."""
    return tf.reshape(
        tf.tile(x[None], [copies] + [1] * len(x.shape)),
        tf.concat([[-1], tf.shape(x)[1:]], 0),
    )


def fold(rows, copies):
    """``(copies * B, *f) -> (copies, B, *f)``; inverse of ``expand``'s layout."""
    return tf.reshape(rows, tf.concat([[copies, -1], tf.shape(rows)[1:]], 0))


def per_pass(max_expansion, rows_per_item):
    """How many expanded items fit in one pass when each costs ``rows_per_item`` rows."""
    if max_expansion is None:
        return None
    return max(1, int(max_expansion) // max(1, int(rows_per_item)))


def inner_budget(max_expansion, items):
    """The row budget left for an inner method when ``items`` copies run together."""
    if max_expansion is None:
        return None
    return max(1, int(max_expansion) // max(1, int(items)))
