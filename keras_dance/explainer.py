"""The Explainer: validates, builds, compiles once, returns numpy.

How a model becomes the function methods differentiate lives in ``model_view``; the
compiled functions in ``_compiled``; targets and score functions in ``_targets``; DANCE's
orchestration (decoys → base maps → aggregation) in ``decoys.dance``.
"""

import dataclasses
import warnings

import keras
import numpy as np

from keras_dance import _targets, _tfdata, _validation, backend
from keras_dance._compiled import CompiledFunctions
from keras_dance._graph import resolve
from keras_dance._tensor import split_budget
from keras_dance.decoys import DecoyConfig, DecoyEngine
from keras_dance.decoys.aggregate import Reducer
from keras_dance.decoys.dance import DecoyMaps
from keras_dance.methods import get as get_method
from keras_dance.model_view import ModelView

TOKEN_REDUCTIONS = ("auto", "mean", "sum", "l2", None)


def _plain_gradient(method):
    """Whether the method's maps are gradients not multiplied by the input (Gradient,
    Guided Backprop, SmoothGrad of those)."""
    base = getattr(method, "method", None)
    if base is not None and method.name in ("smoothgrad", "squaregrad", "vargrad"):
        return method.name == "smoothgrad" and _plain_gradient(base)
    return method.name in ("gradient", "guided_backprop")


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
            None for ``(B, L, E)`` maps; "auto" is "mean", except for plain gradients
            (Gradient, Guided Backprop, their SmoothGrad) on a model whose outputs do
            not change when one constant is added to every embedding dimension (a
            LayerNorm right after the embedding, as in BERT, DistilBERT and RoBERTa):
            every gradient is then orthogonal to (1, …, 1), its mean and sum are
            rounding noise, and "auto" is "l2" (asking for "mean" or "sum" there
            raises). Token models only. Defaults to "auto".
        pad_id: the padding token id, whose positions score 0; None: 0 when the
            embedding has ``mask_zero``, else none (a model that takes a
            ``padding_mask`` input, as keras_hub's do, pads where it is 0). Defaults to
            None.
        explain_input: for a model with several inputs (a dict or a list: keras_hub
            Tasks and Backbones, an image and its metadata), the key or index of the
            floating-point input whose maps are wanted; for token models the input that
            holds the ids (default ``"token_ids"``), explained at the token embedding's
            output (found by itself: keras_hub's ``token_embedding``, also inside
            ``TokenAndPositionEmbedding``, or the one ``Embedding``; or
            ``embedding_layer=``). ``explain`` then takes the model's own structure, and
            every other input — and whatever the model computes from the ids outside
            the embedding (padding mask, segment and position ids) — is held at the
            explained input's own values for every row a method makes (every
            integration point, noise sample, perturbation and decoy): Captum's layer
            attribution with ``additional_forward_args``. Defaults to None.

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
                 embedding_layer=None, token_reduction="auto", pad_id=None,
                 explain_input=None):
        backend.module()  # a backend the seam does not implement yet fails here
        self.model_view = view = ModelView(model, input_shape=input_shape,
                                           preprocess=preprocess,
                                           embedding_layer=embedding_layer, pad_id=pad_id,
                                           explain_input=explain_input)
        if not _validation.is_choice(token_reduction, TOKEN_REDUCTIONS):
            raise ValueError(
                f"Expected `token_reduction` to be one of {list(TOKEN_REDUCTIONS)}. "
                f"Received: token_reduction={token_reduction!r}")
        if not isinstance(jit_compile, bool):
            raise TypeError(
                f"Expected `jit_compile` to be a bool. Received: jit_compile={jit_compile!r}")
        self.model, self.preprocess, self.tokens = model, preprocess, view.tokens
        self.jit_compile = jit_compile
        self.method = get_method(method)
        self.token_reduction = self._token_reduction(token_reduction, decoys)
        self.batch_size = _validation.check_positive_int(
            batch_size, "batch_size", maximum=_validation.MAX_BATCH_SIZE)
        # What explain() takes, and the maps it returns (token models: per token); a
        # model with several inputs takes its own structure (view.structure).
        self.input_shape = view.token_shape if self.tokens else view.input_shape
        self.structure = view.structure
        self.map_shape = (view.input_shape[:1] if self.tokens and token_reduction
                          else view.input_shape)
        self.num_classes = view.num_classes
        self.forward = view.forward
        self.method.check(self.forward)  # e.g. a CAM layer that does not exist
        self.aggregation = aggregation
        reducer = Reducer(aggregation)
        if decoys is not None and any(n is None for n in self.input_shape):
            raise ValueError(
                "Expected a fully known input shape for decoys (patches tile the input). "
                f"Received: input shape {self.input_shape}; pass `input_shape=` with every "
                "axis")
        self.decoys = None if decoys is None else self._engine(model, decoys)
        rows_per_input = self.method.rows_per_input(self.num_classes) if self.num_classes else 1
        if self.decoys is None:
            self.dance = None
            # Inputs per pass, and the rows each input leaves to the method (its budget).
            self.inputs_per_pass = split_budget(self.batch_size, rows_per_input)
            self.budget = split_budget(self.batch_size, self.inputs_per_pass)
        else:
            self.dance = DecoyMaps(self.decoys, self.method, reducer.bind(self.decoys),
                                   self.forward, self.batch_size, rows_per_input)
            self.inputs_per_pass, self.budget = self.dance.inputs_per_pass, self.dance.budget
        self._functions = CompiledFunctions(self)

    def _token_reduction(self, reduction, decoys):
        """The concrete reduction ("auto" resolved); refuses one whose scores would be
        rounding noise (see ``token_reduction``)."""
        noise = (self.tokens and self.model_view.shift_invariant and decoys is None
                 and _plain_gradient(self.method))
        if reduction == "auto":
            return "l2" if noise else "mean"
        if noise and reduction in ("mean", "sum"):
            raise ValueError(
                f"Expected token_reduction 'l2' or None for {self.method.name!r} maps on "
                "this model: its outputs do not change when one constant is added to every "
                "embedding dimension (a LayerNorm after the embedding), so each token's "
                f"gradient sums to zero and its {reduction} is rounding noise. Received: "
                f"token_reduction={reduction!r}")
        return reduction

    def _engine(self, model, config):
        engine = self._build_engine(model, config)
        if self.tokens:
            engine.scale = "spread"  # see DecoyEngine.scale
        return engine

    def _build_engine(self, model, config):
        view = self.model_view
        if not self.tokens and view.structure is None:
            found = view.vision_layout() if isinstance(config, DecoyConfig) else None
            if (found is not None and config.patch is None
                    and tuple(view.input_shape[:2]) == found.image_shape):
                # A vision transformer's patches: the decoys' patch is one model patch,
                # on its grid (stride = patch, from the corner).
                config = dataclasses.replace(config, patch=found.patch_size)
            if isinstance(config, DecoyConfig) and view.is_sublayer(config.layer):
                local = view.on_input(config.layer)
                if local is not None:
                    # A sublayer applied to the input itself (a ViT's patch embedding):
                    # F_l is that layer alone, so receptive-field crops apply (one patch
                    # per problem for a patch embedding), verified exact as for any layer.
                    engine = DecoyEngine(local, dataclasses.replace(
                        config, layer=local.layers[-1].name), view.input_shape,
                        prepare=view.prepare)
                else:
                    # F_l read by intercepting the sublayer's call (no crops)
                    engine = DecoyEngine(model, dataclasses.replace(
                        config, layer=view.layer_function(config.layer)), view.input_shape)
                engine.config = config
                return engine
            return DecoyEngine(model, config, view.input_shape, prepare=view.prepare)
        bounds = view.bounds if self.tokens else None
        if config.value_range != (0.0, 1.0) or bounds is None:
            bounds = None  # the user's box (or no embedding matrix to read one from)
        if view.structure is not None:
            # F_l from the explained tensor, the other inputs held (no cropping).
            engine_config = dataclasses.replace(config, layer=view.layer_function(
                config.layer))
            engine = DecoyEngine(model, engine_config, view.input_shape,
                                 prepare=None if self.tokens else view.prepare,
                                 bounds=bounds)
            engine.config = config
            return engine
        return DecoyEngine(model, config, view.input_shape,
                           start=resolve(model, view.embedding_path), bounds=bounds)

    # ------------------------------------------------------------------ public surface
    @property
    def function(self):
        """The compiled ``function(inputs, targets)``.

        ``inputs``: float32 ``(None, *input_shape)`` (int32 ids for token models);
        ``targets``: int32 ``(None,)`` where -1 means the predicted class. Returns
        ``(maps, targets, feasible_fraction, mean_perturbation)``. Traced once on
        TensorFlow (use it inside your own graphs); on JAX its chunk is compiled for at
        most ⌈log₂ inputs_per_pass⌉ + 1 shapes, whatever batch sizes it is given.
        """
        return self._functions.indexed

    def compiled(self, jit_compile=None, portable=False):
        """A new compiled ``function(inputs, targets)``, as ``function`` but with
        ``jit_compile`` (None: the explainer's) and, with ``portable=True``, plain kernels
        only (no XLA anywhere: what a SavedModel for any TF Serving build needs)."""
        return self._functions.build_indexed(jit_compile, fuse=False if portable else None)

    def chunk_function(self, fuse=None):
        """The uncompiled ``(inputs, targets) -> (maps, targets, feasible fraction, mean
        perturbation)`` for one chunk of at most ``inputs_per_pass`` inputs (targets -1:
        the predicted class): what export converts on backends other than TensorFlow."""
        return self._functions.chunk(fuse)

    def validate(self, x, name="x", in_range=True):
        """``x`` checked as a batch of this explainer's inputs (numpy, float32 or int32
        ids) and, with ``in_range``, inside the decoys' value range when there are decoys.

        Raises:
            TypeError / ValueError: naming ``name``.
        """
        if self.structure is not None:
            return self._validate_structured(x, name, in_range)
        if self.tokens:
            return _validation.as_token_batch(x, self.input_shape,
                                              self.model_view.vocabulary_size, name)
        batch = _validation.as_input_batch(x, self.input_shape, name)
        if self.decoys is not None and in_range:
            lo, hi = self.decoys.config.value_range
            if batch.min() < lo or batch.max() > hi:
                raise ValueError(
                    f"Expected `{name}` inside the decoys' value_range ({lo}, {hi}). "
                    f"Received: {name} with values in [{batch.min()}, {batch.max()}]")
        return batch

    def _validate_structured(self, x, name, in_range):
        view = self.model_view
        packed = self.structure.pack(x, name)
        if self.tokens:
            _validation.as_token_batch(keras.ops.convert_to_numpy(view.ids(packed)),
                                       self.input_shape,
                                       view.vocabulary_size, f"{name}[{view.token_key!r}]")
        elif self.decoys is not None and in_range:
            part = keras.ops.convert_to_numpy(view.structure.part(packed, view.explained_key))
            lo, hi = self.decoys.config.value_range
            if part.min() < lo or part.max() > hi:
                raise ValueError(
                    f"Expected `{name}[{view.explained_key!r}]` inside the decoys' "
                    f"value_range ({lo}, {hi}). Received: values in "
                    f"[{part.min()}, {part.max()}]")
        return packed

    def sync(self):
        """Copies the model's current output-layer weights into the explainer's logits
        copy (a few KB); explain, export and the callback do it before they run."""
        self.model_view.logits.sync()

    @property
    def logits_model(self):
        """The Keras model whose outputs are the logits that are differentiated (the
        user's model, or the explainer's copy without the output activation)."""
        return self.model_view.logits.model

    # ------------------------------------------------------------------ explaining
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
        if _tfdata.is_dataset(x):
            return self._explain_dataset(x, targets, return_details, verbose)
        if verbose not in (0, 1) or isinstance(verbose, bool):
            raise ValueError(f"Expected `verbose` to be 0 or 1. Received: verbose={verbose!r}")
        batch = self.validate(x)
        self.sync()
        if isinstance(targets, tuple) and len(targets) == 2:
            targets = _targets.region_score(targets, len(batch), self.model_view.output_shapes,
                                            self.num_classes)
        if callable(targets):
            return self._explain_score_function(batch, targets, return_details, verbose)
        indices = _validation.as_target_indices(targets, len(batch), self.num_classes)
        function = self._functions.indexed
        maps, resolved, feasible, change = self._in_pieces(
            lambda piece, start: function(piece, backend.to_tensor(
                indices[start:start + len(piece)])),
            batch, verbose)
        details = {"targets": resolved}
        if self.decoys is not None:
            details.update(
                num_decoys=np.full(len(batch), self.decoys.num_decoys, np.int32),
                feasible_fraction=feasible, mean_perturbation=change)
        return self._finish(maps, details, return_details)

    def _explain_dataset(self, dataset, targets, return_details, verbose):
        _tfdata.check_finite(dataset)
        if targets is not None and not callable(targets):
            raise ValueError(
                "Expected `targets` to be None or a callable when `x` is a "
                f"tf.data.Dataset. Received: targets={targets!r}")
        results = [self.explain(batch, targets, True, verbose)
                   for batch in _tfdata.batches(dataset)]
        if not results:
            raise ValueError("Expected a non-empty batch. Received: an empty dataset x")
        maps = np.concatenate([maps for maps, _ in results], axis=0)
        details = {key: np.concatenate([d[key] for _, d in results]) for key in results[0][1]}
        return (maps, details) if return_details else maps

    def _explain_score_function(self, batch, score_fn, return_details, verbose):
        if self.method.needs_class_indices:
            raise ValueError(
                f"Expected class-index `targets` for the competitive method "
                f"{self.method.name!r} (labels compete for coordinates). "
                "Received: targets=a score function")
        # The outputs in passes of the memory knob (only the logits are kept).
        view = self.model_view
        pieces = [self.forward(view.space(keras.ops.convert_to_tensor(
            batch[i:i + self.batch_size]))) for i in range(0, len(batch), self.batch_size)]
        outputs = keras.tree.map_structure(
            lambda *parts: keras.ops.concatenate(parts, axis=0), *pieces)
        _targets.check_score_function(score_fn, outputs, len(batch))
        function = self._functions.for_score_function(score_fn)
        # One piece: a score function sees the whole batch (the bar ends when it does).
        maps = self._in_pieces(lambda piece, _: (function(piece),), batch, verbose,
                               whole=True)[0]
        classes = (keras.ops.convert_to_numpy(score_fn.classes)
                   if isinstance(score_fn, _targets.RegionScore) else -1)
        details = {"targets": np.broadcast_to(classes, (len(batch),)).astype(np.int32)}
        return self._finish(maps, details, return_details)

    def _in_pieces(self, function, batch, verbose, whole=False):
        """``function(piece, start)`` on the whole batch (silent) or chunk by chunk with a
        progress bar; its outputs concatenated as numpy."""
        if not verbose or whole:
            pieces = [(0, batch)]
        else:
            step = self.inputs_per_pass
            pieces = [(i, batch[i:i + step]) for i in range(0, len(batch), step)]
            bar = keras.utils.Progbar(len(batch), unit_name="input")
        results = []
        for start, piece in pieces:
            outputs = function(backend.to_tensor(piece), start)
            results.append([backend.to_numpy(value) for value in outputs])
            if verbose:
                bar.add(len(piece))
        return [np.concatenate(parts) for parts in zip(*results)]

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
        elif self.decoys is None and getattr(self.method, "takes_layer", False):
            flat = np.abs(maps.reshape(len(maps), -1)).max(axis=1)
            zero = int(np.sum(flat == 0))
            if zero:
                name = self.method.layer_function(self.forward).layer_name
                warnings.warn(
                    f"The {type(self.method).__name__} map is identically zero for {zero} "
                    f"of {len(maps)} inputs at layer {name!r}: every channel's weighted sum "
                    "is negative there, or the layer gets no gradient (a vision "
                    "transformer's encoder output when the class token is pooled after a "
                    "per-token norm: name the last block's first norm, the default).",
                    stacklevel=3,
                )
        return (maps, details) if return_details else maps

    def explain_text(self, texts, targets=None, vocabulary=None, return_details=False,
                     **kwargs):
        """Per-token scores for raw strings, tokenized by the model's own tokenizer.

        A keras_hub Task with a ``preprocessor`` (``BertTextClassifier``, …) is fed its
        preprocessor's output (token ids, padding mask, segment ids) and every position
        is named with its tokenizer's token string; a model of our own vocabulary
        convention takes ``vocabulary`` (as ``export``) and is tokenized as the exported
        ``explain_text`` signature does.

        Args:
            texts: a string or a list of strings.
            targets: as ``explain`` (None: each text's predicted class).
            vocabulary: for models without a keras_hub preprocessor: a list of tokens or
                a file of one per line (id 0 padding, id 1 out-of-vocabulary). Defaults
                to None.
            return_details: causal LMs: also ``details["matrix"]`` ``(B, T, L)``, each
                continuation token's log-probability (given everything before it)
                attributed to each position (one explanation per token; for methods
                linear in the score — gradient, gradient×input, Integrated Gradients —
                the rows sum to ``scores``). Defaults to False.
            **kwargs: passed to ``explain`` (``verbose``).

        For a keras_hub ``CausalLM`` (GPT-2, Gemma, Llama …) ``targets`` are the
        continuations (a string, or one per prompt): what is explained is
        log p(continuation | prompt), attributed to each prompt token (the continuation
        keeps its own embedding in every row: teacher forcing, as Captum's
        ``LLMAttribution``); ``mask`` marks the prompt, ``details`` hold
        ``log_probability`` and ``continuation``. ``explain`` on a causal LM takes
        its dict plus ``prompt_mask`` and ``score_weights`` ``(B, L)`` (0/1: the
        attributed positions and the tokens whose log-probability is explained).

        Returns:
            a ``kd.TextExplanation`` (``tokens``, ``ids``, ``scores``, ``mask``,
            ``special``, ``targets``; ``visualize(i)`` for the HTML word map).

        Raises:
            TypeError / ValueError: texts that are not strings, a model that is not a
                token model, no tokenizer and no vocabulary.
        """
        from keras_dance.text import explain_text

        return explain_text(self, texts, targets, vocabulary, return_details, **kwargs)

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
        batch = keras.ops.convert_to_tensor(self.validate(x))
        engine, per_pass = self.decoys, self.dance.decoys_per_pass
        decoys, feasible = [], []
        for start in range(0, engine.num_decoys, per_pass):
            size = min(per_pass, engine.num_decoys - start)
            chunk, found = self._functions.decoys(size)(
                batch, keras.ops.convert_to_tensor(start, "int32"))
            decoys.append(np.swapaxes(keras.ops.convert_to_numpy(chunk), 0, 1))
            feasible.append(keras.ops.convert_to_numpy(found).T)
        return np.concatenate(decoys, axis=1), np.concatenate(feasible, axis=1)

    def embed(self, ids):
        """Token models: ids ``(B, L)`` → the embedded sequences ``(B, L, E)`` the methods
        see, as numpy — e.g. an Integrated Gradients baseline of padding tokens:
        ``IntegratedGradients(baseline=explainer.embed([[pad_id]])[0, 0])``."""
        if not self.tokens:
            raise ValueError("Expected a token model (integer ids through an Embedding). "
                             f"Received: a model with inputs of shape {self.input_shape}")
        batch = _validation.as_token_batch(ids, (None,), self.model_view.vocabulary_size,
                                           "ids")
        view = self.model_view
        if view.structure is not None:  # the token embedding layer itself, on the ids
            return keras.ops.convert_to_numpy(keras.ops.cast(
                view._embedding(keras.ops.convert_to_tensor(batch)), "float32"))
        return keras.ops.convert_to_numpy(view.embed(keras.ops.convert_to_tensor(batch)))

    def predict_classes(self, x):
        """The predicted class of each input (argmax of the logits)."""
        batch = self.validate(x, in_range=False)
        self.sync()
        logits = self.forward(self.model_view.space(keras.ops.convert_to_tensor(batch)))
        return np.argmax(keras.ops.convert_to_numpy(logits), axis=-1).astype(np.int32)

    def export(self, path, overwrite=False, vocabulary=None):
        """Writes a SavedModel with serving signatures for TF Serving.

        Signatures: ``serving_default`` (``inputs`` → ``predictions``), ``explain``
        (``inputs`` → ``saliency``, ``target``: the predicted class) and ``explain_target``
        (``inputs``, ``target`` → ``saliency``, ``target``). Loading needs TensorFlow only.
        The maps are those of ``explain`` with the model's weights at export time. Token
        models take int32 ``(None, L)`` ids and return ``(None, L)`` maps; with
        ``vocabulary`` they also get ``explain_text``: raw strings ``text`` → ``tokens``
        (the words, padded with ""), ``ids``, ``saliency`` and ``target`` — raw text in,
        word scores out. A model with several inputs is served with its own inputs by
        name (``explain(token_ids=…, padding_mask=…)``, each in the dtype the model
        declares); a keras_hub text Task with a preprocessor also gets ``explain_text``,
        its own tokenizer in the graph: ``text`` → ``tokens`` (the tokenizer's strings),
        ``ids``, ``mask`` (False at padding), ``saliency``, ``target`` — equal to
        ``explain_text`` in process. Its tokenizer's ops are TensorFlow Text's: a
        process loading the SavedModel imports ``tensorflow_text`` (or a TF Serving
        build with those ops). A preprocessor that cannot be traced into a graph is
        refused before anything is written.

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

        On JAX the functions are converted with ``jax2tf`` (TensorFlow is imported for
        it): the served graph runs them as ``XlaCallModule`` ops, which TensorFlow and
        TF Serving builds with XLA (the default ones) run. On PyTorch it raises
        ``NotImplementedError`` before anything is written: Keras's own SavedModel export
        from PyTorch needs ``torch_xla``; export the same ``.keras`` file on JAX or
        TensorFlow (the maps are the same).
        """
        # A backend that cannot make a SavedModel refuses here, before TensorFlow loads.
        backend.to_tensorflow(())
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

    # The names earlier releases used inside the package (kept for code that read them).
    _forward = property(lambda self: self.forward)
    _inputs = property(lambda self: self.model_view)
    _logits = property(lambda self: self.model_view.logits)
    _dance = property(lambda self: self.dance)

    def _per_token(self, maps, ids):
        return self.model_view.reduce_tokens(maps, ids, self.token_reduction)

    def get_config(self):
        return {
            "method": {"name": self.method.name, "config": self.method.get_config()},
            "decoys": None if self.decoy_config is None else self.decoy_config.get_config(),
            "aggregation": self.aggregation,
            "batch_size": self.batch_size,
            "jit_compile": self.jit_compile,
        }
