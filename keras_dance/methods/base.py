"""The saliency-method protocol and the one gradient primitive every method uses."""

from keras_dance import backend


class SaliencyMethod:
    """Base class of saliency methods: settings only, no model.

    A method is called as ``method(x, forward, targets, budget=None)`` and returns
    maps of ``x``'s shape, computed with ``keras.ops`` and ``keras_dance.backend`` only, so
    that it traces under the backend's compiler (``tf.function`` and XLA on TensorFlow):

    - ``x``: float32 tensor ``(B, *features)``.
    - ``forward``: ``forward(x) -> outputs`` (the model's logits).
    - ``targets``: an object with ``score(outputs) -> (rows,)`` and ``tile(k)`` (see
      ``keras_dance._targets``).
    - ``budget``: at most this many expanded rows per input in one forward and
      backward pass (``None``: no limit). Methods that expand the batch (noise samples,
      integration steps, classes) loop over chunks to honour it.

    Subclasses set ``name``, implement ``rows_per_input`` (rows per input when nothing
    is chunked), ``__call__`` and ``get_config``, and are added with
    ``kd.methods.register``.
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
    #: Whether the method reads a transformer's attention (it applies to models with
    #: ``keras.layers.MultiHeadAttention`` layers only).
    reads_attention = False

    def rows_per_input(self, num_classes):
        """Rows evaluated per input by one unchunked call."""
        del num_classes
        return 1

    def __call__(self, x, forward, targets, budget=None):
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
    return backend.gradient(lambda rows: targets.score(forward(rows)), x)
