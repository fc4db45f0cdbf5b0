"""The Explainer: validates, builds the score function, compiles once, returns numpy."""

import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_dance import _validation
from keras_dance._chunking import chunked_reduce
from keras_dance._logits import LogitsModel
from keras_dance._targets import CallableTargets, IndexTargets
from keras_dance.aggregate import Reducer
from keras_dance.decoys import DecoyEngine
from keras_dance.methods import get as get_method
from keras_dance.methods.base import ModelFunction, fold


class Explainer:
    """Explains a trained Keras classifier with saliency maps.

    Scores are taken on logits: when an output layer applies softmax or sigmoid, the
    explainer differentiates the pre-activation on its own copy (tf-keras-vis
    ``ReplaceToLinear`` semantics); the user's model is never modified.

    Args:
        model: a built ``keras.Model`` with one input. Never mutated.
        method: a name from ``kd.methods.METHOD_NAMES`` or a ``kd.methods`` instance.
            Defaults to "gradient".
        decoys: a ``kd.DecoyConfig`` for decoy-enhanced (DANCE) maps: the method's map of
            every decoy, aggregated per feature; ``None`` for the plain method. Defaults
            to None.
        aggregation: "range" (DANCE Eq. 3, max − min over decoys) or "mean" (the paper's
            ablation). Used with ``decoys``. Defaults to "range".
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

    def __init__(self, model, method="gradient", decoys=None, aggregation="range",
                 batch_size=128, jit_compile=False):
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
        self._forward = ModelFunction(self._logits, self.num_classes)
        self._reducer = Reducer(aggregation)
        self.aggregation = aggregation
        self.decoys = None if decoys is None else DecoyEngine(model, decoys, self.input_shape)
        expansion = self.method.expansion(self.num_classes) if self.num_classes else 1
        if self.decoys is None:
            # Inputs per pass and the rows per input left for the method's own expansion.
            self.inputs_per_pass = max(1, self.batch_size // max(1, expansion))
            self.max_expansion = max(1, self.batch_size // self.inputs_per_pass)
        else:
            # Decoys held at once ≤ batch_size rows; their maps in sub-chunks of the same.
            count = self.decoys.num_decoys
            self.inputs_per_pass = max(1, self.batch_size // count)
            self.decoys_per_pass = max(1, min(count, self.batch_size // self.inputs_per_pass))
            self.decoys_per_map_pass = max(1, min(
                self.decoys_per_pass, self.batch_size // max(1, expansion) // self.inputs_per_pass))
            self.max_expansion = max(
                1, self.batch_size // (self.decoys_per_map_pass * self.inputs_per_pass))
        self._indexed = self._build_indexed_function()
        self._callable_functions = {}
        self._decoy_functions = {}

    # ------------------------------------------------------------------ compiled parts
    def _maps_for_chunk(self, x, targets):
        """Maps ``(b, …)`` plus per-input decoy statistics (fraction feasible, mean change)."""
        if self.decoys is None:
            batch = tf.shape(x)[0]
            maps = self.method(x, self._forward, targets, self.max_expansion)
            return maps, tf.ones([batch]), tf.zeros([batch])
        engine, reducer = self.decoys, self._reducer
        per_map_pass = self.decoys_per_map_pass
        layer_x = engine.sub_model(x, training=False)  # F_l(x), once for every chunk

        def decoy_chunk(start, size):
            values, found, change = engine.solve(x, start, size, layer_x)  # (size, b, …)

            def map_chunk(first, count):
                part = tf.slice(values, tf.concat([[first], tf.zeros([len(values.shape) - 1],
                                                                     tf.int32)], 0),
                                tf.concat([[count], tf.shape(values)[1:]], 0))
                part = tf.ensure_shape(part, [count] + values.shape[1:])
                decoys = engine.decoy_images(x, start + first, part)  # (count, b, …)
                rows = tf.reshape(decoys, tf.concat([[-1], tf.shape(x)[1:]], 0))
                maps = self.method(rows, self._forward, targets.tile(count), self.max_expansion)
                return reducer.partial(fold(maps, count))

            state = chunked_reduce(map_chunk, size, per_map_pass, reducer.init(x), reducer.merge)
            return (state, tf.reduce_sum(tf.cast(found, tf.float32), axis=0),
                    tf.reduce_sum(change, axis=0))

        def combine(acc, value):
            return reducer.merge(acc[0], value[0]), acc[1] + value[1], acc[2] + value[2]

        batch = tf.shape(x)[0]
        init = (reducer.init(x), tf.zeros([batch]), tf.zeros([batch]))
        count = engine.num_decoys
        state, found, change = chunked_reduce(decoy_chunk, count, self.decoys_per_pass, init,
                                              combine)
        return reducer.result(state, count), found / count, change / count

    def _build_indexed_function(self, jit_compile=None):
        spec = tf.TensorSpec((None,) + self.input_shape, tf.float32)
        per_pass = self.inputs_per_pass
        jit_compile = self.jit_compile if jit_compile is None else jit_compile

        @tf.function(jit_compile=jit_compile, reduce_retracing=True)
        def chunk_function(x, targets):
            if self.num_classes is not None:
                predicted = tf.argmax(self._forward(x), axis=-1, output_type=tf.int32)
                targets = tf.where(targets < 0, predicted, targets)
            maps, feasible, change = self._maps_for_chunk(x, IndexTargets(targets))
            return maps, targets, feasible, change

        @tf.function(input_signature=[spec, tf.TensorSpec((None,), tf.int32)])
        def explain_function(x, targets):
            """Maps, resolved targets and decoy statistics, in chunks of the memory knob."""
            count = tf.shape(x)[0]
            chunks = (count + per_pass - 1) // per_pass
            arrays = [
                tf.TensorArray(dtype, size=chunks, infer_shape=False,
                               element_shape=tf.TensorShape((None,) + shape))
                for dtype, shape in ((tf.float32, self.input_shape), (tf.int32, ()),
                                     (tf.float32, ()), (tf.float32, ()))
            ]
            for i in tf.range(chunks):
                # One chunk at a time: the memory knob bounds the whole call.
                tf.autograph.experimental.set_loop_options(parallel_iterations=1)
                start = i * per_pass
                stop = tf.minimum(start + per_pass, count)
                results = chunk_function(x[start:stop], targets[start:stop])
                arrays = [array.write(i, value) for array, value in zip(arrays, results)]
            return tuple(array.concat() for array in arrays)

        return explain_function

    @property
    def function(self):
        """The compiled ``tf.function(inputs, targets)``.

        ``inputs``: float32 ``(None, *input_shape)``; ``targets``: int32 ``(None,)`` where
        -1 means the predicted class. Returns ``(maps, targets, feasible_fraction,
        mean_perturbation)``. Traced once; use it inside your own graphs.
        """
        return self._indexed

    def _callable_function(self, score_fn):
        function = self._callable_functions.get(score_fn)
        if function is None:
            @tf.function(jit_compile=self.jit_compile)
            def function(x):
                return self._maps_for_chunk(x, CallableTargets(score_fn))[0]

            if len(self._callable_functions) >= 8:
                self._callable_functions.pop(next(iter(self._callable_functions)))
            self._callable_functions[score_fn] = function
        return function

    # ------------------------------------------------------------------ public API
    def explain(self, x, targets=None, return_details=False):
        """Saliency maps for a batch of inputs.

        Args:
            x: numpy array or tensor ``(B, *input_shape)``, or a ``tf.data.Dataset`` of
                such batches (elements may be ``(x, y)`` tuples; ``y`` is ignored).
            targets: ``None`` (each input's predicted class), an int, a ``(B,)`` int
                array, or a callable score function ``fn(outputs) -> (B,)`` on the logits
                (tf-keras-vis ``Score`` objects work; a callable sees whole batches).
            return_details: also return a dict of per-input arrays: ``targets``,
                ``num_decoys``, ``feasible_fraction`` (decoy problems that reached a
                feasible iterate) and ``mean_perturbation`` (mean |x̃ − x| over each
                decoy's patch). Defaults to False.

        Returns:
            float32 numpy array of ``x``'s shape: raw, signed maps (and the details).

        Raises:
            TypeError / ValueError: for invalid ``x`` or ``targets``, naming the argument.
        """
        if isinstance(x, tf.data.Dataset):
            if targets is not None and not callable(targets):
                raise ValueError(
                    "Expected `targets` to be None or a callable when `x` is a "
                    f"tf.data.Dataset. Received: targets={targets!r}"
                )
            results = [self.explain(_first(batch), targets, True) for batch in x]
            if not results:
                raise ValueError("Expected a non-empty batch. Received: an empty dataset x")
            maps = np.concatenate([maps for maps, _ in results], axis=0)
            details = {key: np.concatenate([d[key] for _, d in results])
                       for key in results[0][1]}
            return (maps, details) if return_details else maps
        batch = self._validate(x)
        self._logits.sync()
        if callable(targets):
            if self.method.needs_class_indices:
                raise ValueError(
                    f"Expected class-index `targets` for the competitive method "
                    f"{self.method.name!r} (labels compete for coordinates). "
                    "Received: targets=a score function"
                )
            maps = self._callable_function(targets)(tf.constant(batch)).numpy()
            details = {"targets": np.full(len(batch), -1, np.int32)}
            return self._finish(maps, details, return_details)
        indices = _validation.as_target_indices(targets, len(batch), self.num_classes)
        maps, resolved, feasible, change = self._indexed(tf.constant(batch), tf.constant(indices))
        details = {"targets": resolved.numpy()}
        if self.decoys is not None:
            details.update(
                num_decoys=np.full(len(batch), self.decoys.num_decoys, np.int32),
                feasible_fraction=feasible.numpy(), mean_perturbation=change.numpy())
        return self._finish(maps.numpy(), details, return_details)

    def _validate(self, x):
        batch = _validation.as_input_batch(x, self.input_shape)
        if self.decoys is not None:
            lo, hi = self.decoys.config.value_range
            if batch.min() < lo or batch.max() > hi:
                raise ValueError(
                    f"Expected `x` inside the decoys' value_range ({lo}, {hi}). Received: x "
                    f"with values in [{batch.min()}, {batch.max()}]"
                )
        return batch

    def _finish(self, maps, details, return_details):
        if self.decoys is not None and self.aggregation == "range":
            flat = np.abs(maps.reshape(len(maps), -1)).max(axis=1)
            zero = int(np.sum(flat == 0))
            if zero:
                warnings.warn(
                    f"The decoy range map is identically zero for {zero} of {len(maps)} "
                    "inputs. This happens when the model is linear in the input (DANCE "
                    "Theorem 1: the range is driven by second-order interactions, zero for "
                    "a linear model) or when every decoy equals its input.",
                    stacklevel=3,
                )
        return (maps, details) if return_details else maps

    def generate_decoys(self, x):
        """Every decoy of every input, for inspection.

        Args:
            x: ``(B, *input_shape)`` inside the decoys' value range.

        Returns:
            ``(decoys, feasible)``: float32 ``(B, D, *input_shape)`` and bool ``(B, D)``,
            ``D = explainer.decoys.num_decoys``; an infeasible problem's decoy is ``x``.
        """
        if self.decoys is None:
            raise ValueError("Expected an explainer built with `decoys`. Received: decoys=None")
        batch = self._validate(x)
        engine, per_pass = self.decoys, self.decoys_per_pass
        decoys, feasible = [], []
        for start in range(0, engine.num_decoys, per_pass):
            size = min(per_pass, engine.num_decoys - start)
            chunk, found = self._decoys_function(size)(tf.constant(batch), tf.constant(start))
            decoys.append(np.swapaxes(chunk.numpy(), 0, 1))
            feasible.append(found.numpy().T)
        return np.concatenate(decoys, axis=1), np.concatenate(feasible, axis=1)

    def _decoys_function(self, size):
        """A compiled ``(decoys, found)`` for chunks of ``size`` pairs (built once per size)."""
        if size not in self._decoy_functions:
            def decoys(x, start):
                values, found, _ = self.decoys.solve(x, start, size)
                return self.decoys.decoy_images(x, start, values), found

            self._decoy_functions[size] = tf.function(
                decoys, jit_compile=self.jit_compile, reduce_retracing=True)
        return self._decoy_functions[size]

    def predict_classes(self, x):
        """The predicted class of each input (argmax of the logits)."""
        batch = _validation.as_input_batch(x, self.input_shape)
        self._logits.sync()
        return np.argmax(self._logits(batch).numpy(), axis=-1).astype(np.int32)

    def export(self, path, overwrite=False):
        """Writes a SavedModel with serving signatures for TF Serving.

        Signatures: ``serving_default`` (``inputs`` → ``predictions``), ``explain``
        (``inputs`` → ``saliency``, ``target``: the predicted class) and ``explain_target``
        (``inputs``, ``target`` → ``saliency``, ``target``). Loading needs TensorFlow only.
        The maps are those of ``explain`` with the model's weights at export time.

        Args:
            path: the version directory TF Serving expects, e.g. ``models/digits/1``.
            overwrite: replace an existing non-empty directory. Defaults to False.

        Raises:
            FileExistsError: ``path`` exists, is not empty and ``overwrite`` is False.

        The directory appears whole or not at all: it is written next to ``path`` and
        renamed into place.
        """
        from keras_dance.export import export

        export(self, path, overwrite=overwrite)

    @property
    def decoy_config(self):
        """The ``DecoyConfig`` this explainer was built with, or None."""
        return None if self.decoys is None else self.decoys.config

    def get_config(self):
        return {
            "method": {"name": self.method.name, "config": self.method.get_config()},
            "decoys": None if self.decoy_config is None else self.decoy_config.get_config(),
            "aggregation": self.aggregation,
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
