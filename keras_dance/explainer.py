"""The Explainer: validates, builds the score function, compiles once, returns numpy."""

import keras
import numpy as np
import tensorflow as tf

from keras_dance import _validation
from keras_dance._logits import LogitsModel
from keras_dance._targets import CallableTargets, IndexTargets
from keras_dance.methods import get as get_method


class _Forward:
    """``x -> logits`` plus the class count methods need for their budgets."""

    def __init__(self, logits, num_classes):
        self._logits = logits
        self.num_classes = num_classes

    def __call__(self, x):
        return self._logits(x)


class Explainer:
    """Explains a trained Keras classifier with saliency maps.

    Scores are taken on logits: when an output layer applies softmax or sigmoid, the
    explainer differentiates the pre-activation on its own copy (tf-keras-vis
    ``ReplaceToLinear`` semantics); the user's model is never modified.

    Args:
        model: a built ``keras.Model`` with one input. Never mutated.
        method: a name from ``kd.methods.METHOD_NAMES`` or a ``kd.methods`` instance.
            Defaults to "gradient".
        batch_size: the memory knob — the most model rows (inputs × noise samples ×
            integration steps × classes) evaluated in one forward and backward pass.
            Defaults to 128.
        jit_compile: compile the explanation with XLA. Defaults to False.

    Example:
        >>> import keras_dance as kd
        >>> model = kd.datasets.load_digits_model()
        >>> x = kd.datasets.load_digits()[2][:4]
        >>> maps = kd.Explainer(model, method="smoothgrad").explain(x)
        >>> maps.shape
        (4, 32, 32, 1)
    """

    def __init__(self, model, method="gradient", batch_size=128, jit_compile=False):
        _validation.check_backend()
        if not isinstance(model, keras.Model):
            raise TypeError(
                f"Expected `model` to be a keras.Model. Received: model of type "
                f"{type(model).__name__}"
            )
        if not model.built or len(model.inputs or []) != 1:
            raise ValueError(
                "Expected a built model with exactly one input. Received: model with "
                f"inputs={getattr(model, 'inputs', None)}"
            )
        self.model = model
        self.method = get_method(method)
        self.batch_size = _validation.check_positive_int(batch_size, "batch_size")
        if not isinstance(jit_compile, bool):
            raise TypeError(
                f"Expected `jit_compile` to be a bool. Received: jit_compile={jit_compile!r}"
            )
        self.jit_compile = jit_compile
        self.input_shape = tuple(model.inputs[0].shape[1:])
        self._logits = LogitsModel(model)
        outputs = self._logits.model.outputs
        single = len(outputs) == 1 and len(outputs[0].shape) >= 2
        self.num_classes = int(outputs[0].shape[-1]) if single else None
        self._forward = _Forward(self._logits, self.num_classes)
        expansion = self.method.expansion(self.num_classes) if self.num_classes else 1
        # Inputs per pass and the rows per input left for the method's own expansion.
        self.inputs_per_pass = max(1, self.batch_size // max(1, expansion))
        self.max_expansion = max(1, self.batch_size // self.inputs_per_pass)
        self._indexed = self._build_indexed_function()
        self._callable_functions = {}

    # ------------------------------------------------------------------ compiled parts
    def _maps_for_chunk(self, x, targets):
        return self.method(x, self._forward, targets, self.max_expansion)

    def _build_indexed_function(self):
        spec = tf.TensorSpec((None,) + self.input_shape, tf.float32)
        per_pass = self.inputs_per_pass

        @tf.function(jit_compile=self.jit_compile, reduce_retracing=True)
        def chunk_function(x, targets):
            if self.num_classes is not None:
                predicted = tf.argmax(self._forward(x), axis=-1, output_type=tf.int32)
                targets = tf.where(targets < 0, predicted, targets)
            return self._maps_for_chunk(x, IndexTargets(targets)), targets

        @tf.function(input_signature=[spec, tf.TensorSpec((None,), tf.int32)])
        def explain_function(x, targets):
            """Maps and resolved targets for a batch, split in chunks of the memory knob."""
            count = tf.shape(x)[0]
            chunks = (count + per_pass - 1) // per_pass
            maps = tf.TensorArray(tf.float32, size=chunks, infer_shape=False,
                                  element_shape=tf.TensorShape((None,) + self.input_shape))
            resolved = tf.TensorArray(tf.int32, size=chunks, infer_shape=False,
                                      element_shape=tf.TensorShape((None,)))
            for i in tf.range(chunks):
                start = i * per_pass
                stop = tf.minimum(start + per_pass, count)
                chunk_maps, chunk_targets = chunk_function(x[start:stop], targets[start:stop])
                maps = maps.write(i, chunk_maps)
                resolved = resolved.write(i, chunk_targets)
            return maps.concat(), resolved.concat()

        return explain_function

    @property
    def function(self):
        """The compiled ``tf.function(inputs, targets) -> (maps, targets)``.

        ``inputs``: float32 ``(None, *input_shape)``; ``targets``: int32 ``(None,)`` where
        -1 means the predicted class. Traced once; use it inside your own graphs.
        """
        return self._indexed

    def _callable_function(self, score_fn):
        function = self._callable_functions.get(score_fn)
        if function is None:
            @tf.function(jit_compile=self.jit_compile)
            def function(x):
                return self._maps_for_chunk(x, CallableTargets(score_fn))

            if len(self._callable_functions) >= 8:
                self._callable_functions.pop(next(iter(self._callable_functions)))
            self._callable_functions[score_fn] = function
        return function

    # ------------------------------------------------------------------ public API
    def explain(self, x, targets=None):
        """Saliency maps for a batch of inputs.

        Args:
            x: numpy array or tensor ``(B, *input_shape)``, or a ``tf.data.Dataset`` of
                such batches (elements may be ``(x, y)`` tuples; ``y`` is ignored).
            targets: ``None`` (each input's predicted class), an int, a ``(B,)`` int
                array, or a callable score function ``fn(outputs) -> (B,)`` on the logits
                (tf-keras-vis ``Score`` objects work; a callable sees whole batches).

        Returns:
            float32 numpy array of ``x``'s shape: raw, signed maps.

        Raises:
            TypeError / ValueError: for invalid ``x`` or ``targets``, naming the argument.
        """
        if isinstance(x, tf.data.Dataset):
            if targets is not None and not callable(targets):
                raise ValueError(
                    "Expected `targets` to be None or a callable when `x` is a "
                    f"tf.data.Dataset. Received: targets={targets!r}"
                )
            results = [self.explain(_first(batch), targets) for batch in x]
            if not results:
                raise ValueError("Expected a non-empty batch. Received: an empty dataset x")
            return np.concatenate(results, axis=0)
        batch = _validation.as_input_batch(x, self.input_shape)
        self._logits.sync()
        if callable(targets):
            if self.method.needs_class_indices:
                raise ValueError(
                    f"Expected class-index `targets` for the competitive method "
                    f"{self.method.name!r} (labels compete for coordinates). "
                    "Received: targets=a score function"
                )
            return self._callable_function(targets)(tf.constant(batch)).numpy()
        indices = _validation.as_target_indices(targets, len(batch), self.num_classes)
        maps, _ = self._indexed(tf.constant(batch), tf.constant(indices))
        return maps.numpy()

    def predict_classes(self, x):
        """The predicted class of each input (argmax of the logits)."""
        batch = _validation.as_input_batch(x, self.input_shape)
        self._logits.sync()
        return np.argmax(self._logits(batch).numpy(), axis=-1).astype(np.int32)

    def get_config(self):
        return {
            "method": {"name": self.method.name, "config": self.method.get_config()},
            "batch_size": self.batch_size,
            "jit_compile": self.jit_compile,
        }


def _first(element):
    if isinstance(element, (tuple, list)):
        return element[0]
    if isinstance(element, dict):
        raise TypeError(
            "Expected dataset elements to be tensors or (x, y) tuples. Received: a dict"
        )
    return element
