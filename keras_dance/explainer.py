"""The Explainer: validates, builds, compiles once, returns numpy.

How inputs become differentiable tensors lives in ``model_view``; DANCE's
orchestration (decoys → base maps → aggregation) in ``decoys.dance``.
"""

import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_dance import _validation
from keras_dance._tensor import split_budget
from keras_dance._targets import (CallableTargets, IndexTargets, RegionScore, as_row_scores,
                                  predicted_classes)
from keras_dance.decoys.aggregate import Reducer
from keras_dance.decoys import DecoyEngine
from keras_dance.decoys.dance import DecoyMaps
from keras_dance.model_view import ModelView
from keras_dance.methods import get as get_method

TOKEN_REDUCTIONS = ("mean", "sum", "l2", None)


class Explainer:
    """Explains a trained Keras classifier with saliency maps.

    Scores are taken on logits: when an output layer applies softmax or sigmoid, the
    explainer differentiates the pre-activation on its own copy (tf-keras-vis
    ``ReplaceToLinear`` semantics); the user's model is never modified.

    Args:
        model: a built ``keras.Model`` with one input: functional or Sequential (nested
            models included), or a subclassed model with ``input_shape``. Never mutated.
        method: a name from ``kd.methods.METHOD_NAMES`` or a ``kd.methods`` instance.
            Defaults to "gradient".
        decoys: a ``kd.DecoyConfig`` for decoy-enhanced (DANCE) maps: the method's map of
            every decoy, aggregated per feature; ``None`` for the plain method. Defaults
            to None.
        aggregation: "range" (DANCE Eq. 3, max − min over all decoys), "patch_range" (the
            per-patch reading of Theorem 1: each feature's range over the decoys of the
            patches covering it, averaged over those patches; ``kd.aggregate.
            patch_range_aggregate``) or "mean" (the paper's ablation). Used with
            ``decoys``; docs/quality.md ("When to use DANCE") compares them. Defaults to
            "range".
        batch_size: the memory knob — the most model rows (inputs × noise samples ×
            integration steps × classes) evaluated in one forward and backward pass.
            Defaults to 128.
        jit_compile: compile the explanation with XLA. Defaults to False.
        preprocess: a callable applied to the inputs inside the compiled graph, before
            the model (e.g. ``keras.applications.resnet50.preprocess_input``): maps and
            decoys live in the raw input space users display and feed, and the gradient
            flows through it. Export and the callback carry it. For decoys, set
            ``DecoyConfig.value_range`` to the raw range (e.g. ``(0, 255)``). Defaults to
            None.
        input_shape: the shape of one input, for models where it cannot be read
            (subclassed models) or has ``None`` axes. Defaults to None.
        embedding_layer: token models (integer ids through an ``Embedding``) are
            explained at the embedding's output, the embedded sequence ``(L, E)``: every
            method and the decoys (patches over token positions, spanning the embedding
            dimensions; the box is the embedding matrix's per-dimension range unless
            ``DecoyConfig.value_range`` is changed from its default) work there. The one
            ``keras.layers.Embedding`` is found by itself; otherwise name the layer
            (name, nested path, index or layer). Defaults to None.
        token_reduction: how a token's map over its embedding dimensions becomes one
            score: "mean" (the DANCE paper), "sum" (keeps IG's completeness), "l2", or
            None for ``(B, L, E)`` maps. Token models only. Defaults to "mean".
        pad_id: the padding token id, whose positions score 0; None: 0 when the
            embedding has ``mask_zero``, else none. Defaults to None.

    Example:
        >>> import keras_dance as kd
        >>> model = kd.datasets.load_digits_model()
        >>> x = kd.datasets.load_digits()[2][:4]
        >>> maps = kd.Explainer(model, method="smoothgrad").explain(x)
        >>> maps.shape
        (4, 32, 32, 1)
    """

    def __init__(self, model, method="gradient", decoys=None, aggregation="range",
                 batch_size=128, jit_compile=False, preprocess=None, input_shape=None,
                 embedding_layer=None, token_reduction="mean", pad_id=None):
        _validation.check_backend()
        self._inputs = ModelView(model, input_shape=input_shape, preprocess=preprocess,
                                    embedding_layer=embedding_layer, pad_id=pad_id)
        self.tokens = self._inputs.tokens
        if token_reduction not in TOKEN_REDUCTIONS:
            raise ValueError(
                f"Expected `token_reduction` to be one of {list(TOKEN_REDUCTIONS)}. "
                f"Received: token_reduction={token_reduction!r}")
        self.token_reduction = token_reduction
        self.model = model
        self.preprocess = preprocess
        self.method = get_method(method)
        self.batch_size = _validation.check_positive_int(
            batch_size, "batch_size", maximum=_validation.MAX_BATCH_SIZE)
        if not isinstance(jit_compile, bool):
            raise TypeError(
                f"Expected `jit_compile` to be a bool. Received: jit_compile={jit_compile!r}"
            )
        self.jit_compile = jit_compile
        # What explain() takes, and the space the methods differentiate (the embedded
        # sequence for token models; the input itself otherwise).
        self.input_shape = self._inputs.token_shape if self.tokens else self._inputs.input_shape
        self._space_shape = self._inputs.input_shape
        self.map_shape = (self._space_shape[:1] if self.tokens and token_reduction
                          else self._space_shape)
        self._logits = self._inputs.logits
        self.num_classes = self._inputs.num_classes
        self._forward = self._inputs.forward
        self.method.check(self._forward)  # e.g. a CAM layer that does not exist
        self._reducer = Reducer(aggregation)
        self.aggregation = aggregation
        if decoys is not None and any(n is None for n in self.input_shape):
            raise ValueError(
                "Expected a fully known input shape for decoys (patches tile the input). "
                f"Received: input shape {self.input_shape}; pass "
                "`input_shape=` with every axis"
            )
        self.decoys = None if decoys is None else self._engine(model, decoys)
        if self.decoys is not None:
            self._reducer.bind(self.decoys)
        rows_per_input = self.method.rows_per_input(self.num_classes) if self.num_classes else 1
        if self.decoys is None:
            self._dance = None
            # Inputs per pass, and the rows each input leaves to the method (its budget).
            self.inputs_per_pass = split_budget(self.batch_size, rows_per_input)
            self.budget = split_budget(self.batch_size, self.inputs_per_pass)
        else:
            self._dance = DecoyMaps(self.decoys, self.method, self._reducer, self._forward,
                                    self.batch_size, rows_per_input)
            self.inputs_per_pass = self._dance.inputs_per_pass
            self.budget = self._dance.budget
        self._indexed = self._build_indexed_function()
        self._callable_functions = {}
        self._decoy_functions = {}

    def _engine(self, model, config):
        if not self.tokens:
            return DecoyEngine(model, config, self._space_shape, prepare=self._inputs.prepare)
        from keras_dance._graph import resolve

        bounds = self._inputs.bounds
        if config.value_range != (0.0, 1.0) or bounds is None:
            bounds = None  # the user's box (or no embedding matrix to read one from)
        return DecoyEngine(model, config, self._space_shape,
                           start=resolve(model, self._inputs.embedding_path), bounds=bounds)

    # ------------------------------------------------------------------ compiled parts
    def _space(self, x):
        """Explainer inputs → the tensor the methods differentiate (embeds token ids)."""
        return self._inputs.embed(x) if self.tokens else x

    def _per_token(self, maps, x):
        """Token models: ``(b, L, E)`` maps reduced per token, padding set to 0."""
        if not self.tokens:
            return maps
        reduction = self.token_reduction
        if reduction == "mean":
            maps = tf.reduce_mean(maps, axis=-1)
        elif reduction == "sum":
            maps = tf.reduce_sum(maps, axis=-1)
        elif reduction == "l2":
            maps = tf.norm(maps, axis=-1)
        mask = self._inputs.pad_mask(x)
        return maps * (mask if reduction else mask[..., None])

    def _maps_for_chunk(self, x, targets):
        """Maps ``(b, …)`` plus per-input decoy statistics (fraction feasible, mean change)."""
        z = self._space(x)
        if self._dance is not None:
            maps, feasible, change = self._dance(z, targets)
            return self._per_token(maps, x), feasible, change
        batch = tf.shape(x)[0]
        maps = self.method(z, self._forward, targets, self.budget)
        return self._per_token(maps, x), tf.ones([batch]), tf.zeros([batch])

    def _build_indexed_function(self, jit_compile=None):
        spec = tf.TensorSpec((None,) + self.input_shape, tf.int32 if self.tokens else tf.float32)
        per_pass = self.inputs_per_pass
        jit_compile = self.jit_compile if jit_compile is None else jit_compile

        @tf.function(jit_compile=jit_compile, reduce_retracing=True)
        def chunk_function(x, targets):
            if self.num_classes is not None:
                # The forward pass for the predicted class only when some target asks.
                targets = tf.cond(
                    tf.reduce_any(targets < 0),
                    lambda: tf.where(targets < 0,
                                     predicted_classes(self._forward(self._space(x))),
                                     targets),
                    lambda: targets)
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
                for dtype, shape in ((tf.float32, self.map_shape), (tf.int32, ()),
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
        # Keyed by identity (score objects need not be hashable); the entry keeps the
        # object alive so that its id cannot be reused by another one.
        entry = self._callable_functions.get(id(score_fn))
        if entry is None:
            @tf.function(jit_compile=self.jit_compile)
            def function(x):
                return self._maps_for_chunk(x, CallableTargets(score_fn))[0]

            if len(self._callable_functions) >= 8:
                self._callable_functions.pop(next(iter(self._callable_functions)))
            entry = self._callable_functions[id(score_fn)] = (score_fn, function)
        return entry[1]

    def _region_score(self, targets, batch):
        """``(classes, mask)`` → a ``RegionScore``, for outputs with positions."""
        shapes = self._inputs.output_shapes
        if self.num_classes is None or len(shapes[0]) < 3:
            raise ValueError(
                "Expected `targets=(classes, mask)` only for a model whose output has "
                "positions (B, *positions, classes), e.g. segmentation. Received: a tuple "
                f"for outputs of shapes {shapes}"
            )
        classes = _validation.as_target_indices(targets[0], batch, self.num_classes)
        if np.any(classes < 0):
            raise ValueError("Expected explicit classes in `targets=(classes, mask)`.")
        positions = tuple(shapes[0][1:-1])
        mask = _validation.as_masks(targets[1], "mask")
        if mask.shape not in (positions, (batch,) + positions) or None in positions:
            raise ValueError(
                f"Expected the region `mask` of shape {positions} or {(batch,) + positions} "
                f"(the output's positions). Received: mask.shape={mask.shape}"
            )
        if np.any(mask.reshape(-1, int(np.prod(positions))).sum(axis=1) == 0):
            raise ValueError("Expected a non-empty region `mask` for every input. Received: "
                             "a mask with no True position")
        return RegionScore(classes, mask)

    def _check_score_function(self, score_fn, batch):
        """The scores of the batch, eagerly: one float per input, differentiable.

        A score function sees whole batches (tf-keras-vis ``CategoricalScore([...])``
        holds one index per input), so the check runs on the batch it will explain.
        """
        # The outputs in passes of the memory knob (only the logits are kept).
        pieces = [self._forward(self._space(tf.constant(batch[i:i + self.batch_size])))
                  for i in range(0, len(batch), self.batch_size)]
        outputs = tf.nest.map_structure(lambda *parts: tf.concat(parts, 0), *pieces)
        with tf.GradientTape() as tape:
            tape.watch(outputs)
            try:
                scores = score_fn(outputs)
            except Exception as error:
                raise ValueError(
                    f"Expected `targets` to be a score function on the model's (logit) "
                    f"outputs. Received: calling it raised {type(error).__name__}: {error}"
                ) from error
            if scores is None or isinstance(scores, (str, bytes)):
                raise TypeError(
                    f"Expected `targets` to return float scores, one per input. Received: "
                    f"it returned {scores!r}"
                )
            try:  # the reduction the compiled maps apply (lists summed, extra axes summed)
                scores = as_row_scores(scores)
            except (TypeError, ValueError) as error:
                raise TypeError(
                    f"Expected `targets` to return float scores, one per input. Received: "
                    f"it returned {type(scores).__name__}"
                ) from error
        if not scores.dtype.is_floating:
            raise TypeError(
                "Expected `targets` to return float scores (integer scores have no "
                f"gradient). Received: scores of dtype {scores.dtype.name}"
            )
        if len(scores.shape) == 0 or scores.shape[0] != len(batch):
            raise ValueError(
                f"Expected `targets` to return one score per input, shape ({len(batch)},) "
                f"for {len(batch)} inputs. Received: scores of shape {tuple(scores.shape)}"
            )
        if tape.gradient(scores, outputs) is None:
            raise ValueError(
                "Expected `targets` to return scores computed from the model's outputs; "
                "these do not depend on them, so every map would be zero. Received: a "
                "score function whose result is constant"
            )

    # ------------------------------------------------------------------ public API
    def explain(self, x, targets=None, return_details=False, verbose=0):
        """Saliency maps for a batch of inputs.

        Args:
            x: numpy array or tensor ``(B, *input_shape)``, or a ``tf.data.Dataset`` of
                such batches (elements may be ``(x, y)`` tuples; ``y`` is ignored).
            targets: ``None`` (each input's predicted class), an int, a ``(B,)`` int
                array, or a callable score function ``fn(outputs) -> (B,)`` on the logits
                (tf-keras-vis ``Score`` objects work; a callable sees whole batches). For
                outputs with positions (``(B, *positions, C)``: segmentation, per-timestep)
                a class's logit is averaged over the positions, or over a region with
                ``targets=(classes, mask)`` (``mask``: boolean ``positions`` or
                ``(B, *positions)``); the predicted class is the argmax of the
                position-averaged logits.
            return_details: also return a dict of per-input arrays: ``targets``,
                ``num_decoys``, ``feasible_fraction`` (decoy problems that reached a
                feasible iterate) and ``mean_perturbation`` (mean |x̃ − x| over each
                decoy's patch). Defaults to False.
            verbose: 1 shows a progress bar (``keras.utils.Progbar``: inputs done, rate,
                time left), updated after every chunk of ``inputs_per_pass`` inputs;
                0 is silent. Defaults to 0.

        Returns:
            float32 numpy array of ``x``'s shape: raw, signed maps (and the details).

        Raises:
            TypeError / ValueError: for invalid ``x`` or ``targets``, naming the argument.
        """
        if not isinstance(return_details, bool):
            raise TypeError(f"Expected `return_details` to be a bool. Received: "
                            f"return_details={return_details!r}")
        if isinstance(x, tf.data.Dataset):
            if x.cardinality() == tf.data.INFINITE_CARDINALITY:
                raise ValueError(
                    "Expected a finite `x` dataset (explain reads every batch). Received: a "
                    "tf.data.Dataset of infinite cardinality (e.g. `.repeat()`); take the "
                    "batches to explain with `.take(n)`")
            if targets is not None and not callable(targets):
                raise ValueError(
                    "Expected `targets` to be None or a callable when `x` is a "
                    f"tf.data.Dataset. Received: targets={targets!r}"
                )
            results = [self.explain(_first(batch), targets, True, verbose) for batch in x]
            if not results:
                raise ValueError("Expected a non-empty batch. Received: an empty dataset x")
            maps = np.concatenate([maps for maps, _ in results], axis=0)
            details = {key: np.concatenate([d[key] for _, d in results])
                       for key in results[0][1]}
            return (maps, details) if return_details else maps
        if verbose not in (0, 1) or isinstance(verbose, bool):
            raise ValueError(f"Expected `verbose` to be 0 or 1. Received: verbose={verbose!r}")
        batch = self._validate(x)
        self._logits.sync()
        if isinstance(targets, tuple) and len(targets) == 2:
            targets = self._region_score(targets, len(batch))
        if callable(targets):
            if self.method.needs_class_indices:
                raise ValueError(
                    f"Expected class-index `targets` for the competitive method "
                    f"{self.method.name!r} (labels compete for coordinates). "
                    "Received: targets=a score function"
                )
            self._check_score_function(targets, batch)
            function = self._callable_function(targets)
            # One piece: a score function sees the whole batch (the bar ends when it does).
            maps = self._in_pieces(lambda piece: (function(piece),), batch, verbose,
                                   whole=True)[0]
            classes = (keras.ops.convert_to_numpy(targets.classes)
                       if isinstance(targets, RegionScore) else -1)
            details = {"targets": np.broadcast_to(classes, (len(batch),)).astype(np.int32)}
            return self._finish(maps, details, return_details)
        indices = _validation.as_target_indices(targets, len(batch), self.num_classes)
        maps, resolved, feasible, change = self._in_pieces(
            lambda piece, start: self._indexed(piece, tf.constant(indices[start:start + len(
                piece)])), batch, verbose, with_start=True)
        details = {"targets": resolved}
        if self.decoys is not None:
            details.update(
                num_decoys=np.full(len(batch), self.decoys.num_decoys, np.int32),
                feasible_fraction=feasible, mean_perturbation=change)
        return self._finish(maps, details, return_details)

    def _in_pieces(self, function, batch, verbose, with_start=False, whole=False):
        """``function`` on the whole batch (silent) or chunk by chunk with a progress bar;
        its outputs concatenated as numpy."""
        if not verbose or whole:
            pieces = [(0, batch)]
        else:
            step = self.inputs_per_pass
            pieces = [(i, batch[i:i + step]) for i in range(0, len(batch), step)]
            bar = keras.utils.Progbar(len(batch), unit_name="input")
        results = []
        for start, piece in pieces:
            args = (tf.constant(piece), start) if with_start else (tf.constant(piece),)
            results.append([value.numpy() for value in function(*args)])
            if verbose:
                bar.add(len(piece))
        return [np.concatenate(parts) for parts in zip(*results)]

    def _as_batch(self, x, name="x"):
        """``x`` validated as a batch of this explainer's inputs (token ids or floats)."""
        if self.tokens:
            return _validation.as_token_batch(x, self.input_shape,
                                              self._inputs.vocabulary_size, name)
        return _validation.as_input_batch(x, self.input_shape, name)

    def _validate(self, x):
        batch = self._as_batch(x)
        if self.decoys is not None and not self.tokens:
            lo, hi = self.decoys.config.value_range
            if batch.min() < lo or batch.max() > hi:
                raise ValueError(
                    f"Expected `x` inside the decoys' value_range ({lo}, {hi}). Received: x "
                    f"with values in [{batch.min()}, {batch.max()}]"
                )
        return batch

    def _finish(self, maps, details, return_details):
        if self.decoys is not None and self.aggregation in ("range", "patch_range"):
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
            For token models decoys are embedded sequences, ``(B, D, L, E)``, not tokens.
        """
        if self.decoys is None:
            raise ValueError("Expected an explainer built with `decoys`. Received: decoys=None")
        batch = self._validate(x)
        engine, per_pass = self.decoys, self._dance.decoys_per_pass
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
                z = self._space(x)
                values, found, _ = self.decoys.solve(z, start, size)
                return self.decoys.decoy_images(z, start, values), found

            self._decoy_functions[size] = tf.function(
                decoys, jit_compile=self.jit_compile, reduce_retracing=True)
        return self._decoy_functions[size]

    def embed(self, ids):
        """Token models: ids ``(B, L)`` → the embedded sequences ``(B, L, E)`` the methods
        see, as numpy — e.g. an Integrated Gradients baseline of padding tokens:
        ``IntegratedGradients(baseline=explainer.embed([[pad_id]])[0, 0])``."""
        if not self.tokens:
            raise ValueError("Expected a token model (integer ids through an Embedding). "
                             f"Received: a model with inputs of shape {self.input_shape}")
        batch = _validation.as_token_batch(ids, (None,), self._inputs.vocabulary_size, "ids")
        return self._inputs.embed(tf.constant(batch)).numpy()

    def predict_classes(self, x):
        """The predicted class of each input (argmax of the logits)."""
        batch = self._as_batch(x)
        self._logits.sync()
        return np.argmax(self._forward(self._space(tf.constant(batch))).numpy(),
                         axis=-1).astype(np.int32)

    def export(self, path, overwrite=False, vocabulary=None):
        """Writes a SavedModel with serving signatures for TF Serving.

        Signatures: ``serving_default`` (``inputs`` → ``predictions``), ``explain``
        (``inputs`` → ``saliency``, ``target``: the predicted class) and ``explain_target``
        (``inputs``, ``target`` → ``saliency``, ``target``). Loading needs TensorFlow only.
        The maps are those of ``explain`` with the model's weights at export time. Token
        models take int32 ``(None, L)`` ids and return ``(None, L)`` maps; with
        ``vocabulary`` they also get ``explain_text``: raw strings ``text`` → ``tokens``
        (the words, padded with ""), ``ids``, ``saliency`` and ``target`` — raw text in,
        word scores out.

        Args:
            path: the version directory TF Serving expects, e.g. ``models/digits/1``.
            overwrite: replace an existing non-empty directory. Defaults to False.
            vocabulary: token models: a list of tokens or a file of one per line, id =
                position, Keras's convention (id 0 padding, id 1 out-of-vocabulary, e.g.
                ``TextVectorization.get_vocabulary()``); saved as an asset. Defaults to
                None.

        Returns:
            the ``pathlib.Path`` written.

        Raises:
            FileExistsError: ``path`` exists, is not empty and ``overwrite`` is False.

        The directory appears whole or not at all: it is written next to ``path`` and
        renamed into place.
        """
        from keras_dance.export import export

        return export(self, path, overwrite=overwrite, vocabulary=vocabulary)

    @property
    def max_expansion(self):
        """The rows per input left to the method in one pass: ``budget``'s older name."""
        return self.budget

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
