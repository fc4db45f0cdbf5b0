"""Input adaptation: how a user's input becomes the tensor every method differentiates.

The explainer attributes with respect to what users display and feed: the raw input,
before the user's ``preprocess`` (e.g. pixels in [0, 255] before
``keras.applications.resnet50.preprocess_input``). This module reads the model's input
shape (or takes it, for subclassed models), refuses inputs that cannot be differentiated
(integer token ids, a graph that cuts the gradient) instead of returning zero maps, and
builds ``forward(x) = logits(model(preprocess(x)))``.

Token models (integer ids through an ``Embedding``) are explained at the embedding's
output: ``embed(ids)`` is the embedded sequence ``(B, L, E)``, every method and the decoys
work on it, and ``forward(z)`` runs the rest of the model from there (``kd._graph``).
"""

import contextlib

import keras
import numpy as np

from keras_dance import _graph, _inputs, _validation, _vit, backend
from keras_dance._graph import graph_io
from keras_dance._logits import LogitsModel, as_float32


class ModelView:
    """The model seen from the explainer: raw inputs in, logits out.

    Args:
        model: a built ``keras.Model``: functional or Sequential with one input, or any
            model callable on a batch (subclassed) when ``input_shape`` is given.
        input_shape: the input shape without the batch axis; required when it cannot be
            read from the model, and fills a functional model's ``None`` axes. Defaults
            to None.
        preprocess: a callable applied to the inputs inside the compiled graph, before the
            model; the gradient flows through it. Defaults to None.
        embedding_layer: for token models, the layer whose output is attributed (name,
            path, index or layer); None finds the one ``keras.layers.Embedding``.
        pad_id: the padding token id (its positions score 0); None: 0 when the embedding
            has ``mask_zero``, else no padding.

    Attributes:
        input_shape: the shape of one input the methods differentiate (for token models
            the embedded sequence ``(L, E)``).
        tokens: whether the model takes token ids (then ``token_shape``, ``embed``,
            ``pad_id``, ``bounds`` (per-dimension range of the embedding matrix or None),
            ``vocabulary_size`` and ``embedding_path`` are set).
        num_classes: the size of the class axis, or None (no single class axis).
        output_shapes: the shape of each output (batch axis included).
        logits: the ``LogitsModel`` (output activations removed on a private copy).
        forward: ``ModelFunction`` ``x -> logits(model(preprocess(x)))``.
        has_graph: whether the model is functional or Sequential (layers can be named).

    Raises:
        TypeError / ValueError: a model or argument that cannot be explained, naming it.
    """

    def __init__(self, model, input_shape=None, preprocess=None, embedding_layer=None,
                 pad_id=None, explain_input=None):
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
        _validation.check_callable(preprocess, "preprocess")
        self.model = model
        self.preprocess = preprocess
        io = graph_io(model)
        self.has_graph = io is not None
        self.tokens = False
        self.causal = False  # a causal LM: see CAUSAL_KEYS
        self.shift_invariant = False  # token models: see _shift_invariant
        self._start = None  # token models: the embedding, where the layer hooks start
        self.structure = None  # models with several inputs: their packing (kd._inputs)
        if explain_input is not None and not self.has_graph:
            raise ValueError(
                "Expected `explain_input` only for a functional model with several inputs. "
                f"Received: explain_input={explain_input!r} for a model of type "
                f"{type(model).__name__}")
        if self.has_graph:
            inputs = io[0]
            if len(inputs) != 1 or explain_input is not None:
                self._init_structured(model, input_shape, embedding_layer, pad_id,
                                      explain_input)
                return
            declared = tuple(inputs[0].shape[1:])
            if _embedding_inside_a_layer(model, inputs[0].dtype, embedding_layer):
                # An embedding a custom layer calls (keras_hub's TokenAndPositionEmbedding):
                # reached by intercepting its call, as for models with several inputs.
                self._init_structured(model, input_shape, embedding_layer, pad_id, None)
                return
            self.input_shape = _merge_shapes(declared, input_shape)
            path = _embedding_path(model, inputs[0].dtype, embedding_layer)
            if path is not None:
                self._init_tokens(model, path, pad_id)
                return
            if pad_id is not None:
                raise ValueError(
                    "Expected `pad_id` only for token models (integer ids through an "
                    f"Embedding). Received: pad_id={pad_id!r} for model {model.name!r}")
            _check_dtype(inputs[0].dtype)
        else:
            if input_shape is None:
                raise ValueError(
                    f"Expected `input_shape` for a model whose input shape cannot be read "
                    f"(a subclassed keras.Model, {type(model).__name__}): e.g. "
                    "kd.Explainer(model, input_shape=(32, 32, 3)). Received: input_shape=None"
                )
            self.input_shape = _shape(input_shape)
        self.logits = LogitsModel(model, preprocess)
        outputs = self._probe()
        self.output_shapes = outputs
        single = len(outputs) == 1 and len(outputs[0]) >= 2 and outputs[0][-1] is not None
        self.num_classes = int(outputs[0][-1]) if single else None
        self._layer_functions = {}
        self.forward = ModelFunction(self._forward, self.num_classes,
                                     self if self.has_graph else None,
                                     input_shape=self.input_shape)

    # ------------------------------------------------------------------ token models
    def _init_tokens(self, model, path, pad_id):
        if self.preprocess is not None:
            raise ValueError(
                "Expected no `preprocess` for a token model (the ids are embedded by the "
                f"model). Received: preprocess={self.preprocess!r}")
        if len(self.input_shape) != 1 or self.input_shape[0] is None:
            raise ValueError(
                "Expected token ids of a known length, shape (B, L): pass "
                f"`input_shape=(L,)`. Received: input shape {self.input_shape}")
        layer = path[-1]
        self.tokens = True
        self.token_shape = self.input_shape
        self.embedding_path = "/".join(item.name for item in path)
        self.vocabulary_size = getattr(layer, "input_dim", None)
        self.embed_graph = _graph.GraphFunction(model, path)
        matrix = getattr(layer, "embeddings", None)
        self.bounds = None if matrix is None else (
            np.min(keras.ops.convert_to_numpy(matrix), axis=0),
            np.max(keras.ops.convert_to_numpy(matrix), axis=0))
        if pad_id is None and getattr(layer, "mask_zero", False):
            pad_id = 0
        self.pad_id = _check_pad_id(pad_id, self.vocabulary_size)
        self.logits = LogitsModel(model)
        copy_path = _graph.resolve(self.logits.model, self.embedding_path)
        self._tail = _graph.GraphFunction(self.logits.model, None, start=copy_path)
        ids = np.zeros((2,) + self.token_shape, np.int32)
        ids[0] = np.arange(self.token_shape[0]) % max(1, self.vocabulary_size or 1)
        embedded = self.embed(keras.ops.convert_to_tensor(ids))
        if len(embedded.shape) != 3:
            raise ValueError(
                f"Expected the embedding layer {self.embedding_path!r} to return (B, L, E). "
                f"Received: output of shape {tuple(embedded.shape)}")
        self.input_shape = tuple(int(n) for n in embedded.shape[1:])
        self._check_tail(ids, embedded)
        self.shift_invariant = self._shift_invariant(embedded)
        self.output_shapes = [tuple(o.shape) for o in keras.tree.flatten(
            self._forward(embedded))]
        single = len(self.output_shapes) == 1 and len(self.output_shapes[0]) >= 2
        self.num_classes = int(self.output_shapes[0][-1]) if single else None
        # The layer hooks (CAMs, Guided Backprop) run the copy from the embedded sequence.
        self._start = copy_path
        self._layer_functions = {}
        self.forward = ModelFunction(self._forward, self.num_classes, self,
                                     input_shape=self.input_shape)

    # ------------------------------------------------------------------ several inputs
    def _init_structured(self, model, input_shape, embedding_layer, pad_id, explain_input):
        """A model with several inputs (a dict or a list): one of them, or the token
        embedding's output, is explained; the others are held at each input's values."""
        keys, tensors, kind = _inputs.input_structure(model)
        specs = {k: t for k, t in zip(keys, tensors)}
        dtypes = {k: keras.backend.standardize_dtype(t.dtype) for k, t in specs.items()}
        if explain_input is not None and explain_input not in keys:
            raise ValueError(
                f"Expected `explain_input` to be one of the model's inputs {keys}. "
                f"Received: explain_input={explain_input!r}")
        floating = explain_input is not None and keras.backend.is_float_dtype(
            dtypes[explain_input])
        self._context = None
        if floating:
            if embedding_layer is not None or pad_id is not None:
                raise ValueError(
                    "Expected no `embedding_layer` or `pad_id` when `explain_input` names a "
                    f"floating-point input. Received: explain_input={explain_input!r}, "
                    f"embedding_layer={embedding_layer!r}, pad_id={pad_id!r}")
            self.explained_key = explain_input
            shapes = {k: _known_shape(specs[k], k, None) for k in keys}
            self.structure = _inputs.InputStructure(keys, [shapes[k] for k in keys],
                                                    [dtypes[k] for k in keys], kind)
            self.input_shape = shapes[explain_input]
            if input_shape is not None and _shape(input_shape) != self.input_shape:
                raise ValueError(
                    f"Expected `input_shape` to match the explained input's shape "
                    f"{self.input_shape}. Received: input_shape={input_shape!r}")
            self.logits = LogitsModel(model, self.preprocess)
            self._finish_structured()
            return
        if self.preprocess is not None:
            raise ValueError(
                "Expected no `preprocess` for a token model (the ids are embedded by the "
                f"model). Received: preprocess={self.preprocess!r}")
        path, layer = _find_embedding(model, embedding_layer, dtypes)
        key = explain_input
        if key is None:
            integer = [k for k in keys if not keras.backend.is_float_dtype(dtypes[k])]
            key = "token_ids" if "token_ids" in keys else (
                integer[0] if len(integer) == 1 else None)
        if key is None:
            raise ValueError(
                "Expected `explain_input` naming the input that holds the token ids (the "
                f"model's inputs are {keys}, none of them 'token_ids'). Received: "
                "explain_input=None")
        if keras.backend.is_float_dtype(dtypes[key]):
            raise ValueError(
                f"Expected the token ids input {key!r} to be integer. Received: dtype "
                f"{dtypes[key]}")
        length = _sequence_length(model, specs[key], input_shape)
        shapes = {k: _known_shape(specs[k], k, length) for k in keys}
        self.causal = is_causal_lm(model)
        extra = ()
        if self.causal:
            # What is explained is log p(marked tokens | earlier ones) (CAUSAL_KEYS).
            if kind != "dict" or any(k in keys for k in CAUSAL_KEYS):
                raise ValueError(
                    "Expected a causal LM taking a dict without the keys "
                    f"{list(CAUSAL_KEYS)}. Received: inputs {keys}")
            extra = CAUSAL_KEYS
            for name in extra:
                shapes[name], dtypes[name] = (length,), "int32"
        self.structure = _inputs.InputStructure(
            list(keys) + list(extra), [shapes[k] for k in list(keys) + list(extra)],
            [dtypes[k] for k in list(keys) + list(extra)], kind, extra=extra)
        self.tokens = True
        self.token_key, self.token_shape = key, shapes[key]
        self.embedding_path, self._embedding = path, layer
        self.vocabulary_size = getattr(layer, "input_dim", None)
        matrix = getattr(layer, "embeddings", None)
        self.bounds = None if matrix is None else (
            np.min(keras.ops.convert_to_numpy(matrix), axis=0),
            np.max(keras.ops.convert_to_numpy(matrix), axis=0))
        # Padding: the model's own padding mask (keras_hub's `padding_mask`), else pad_id.
        self.pad_key = "padding_mask" if shapes.get("padding_mask") == self.token_shape \
            else None
        if pad_id is None and self.pad_key is None and getattr(layer, "mask_zero", False):
            pad_id = 0
        self.pad_id = _check_pad_id(pad_id, self.vocabulary_size)
        self.logits = LogitsModel(model)
        self._finish_structured()

    def _finish_structured(self):
        packed = self._probe_batch()
        z = self.space(keras.ops.convert_to_tensor(packed))
        if self.tokens:
            if len(z.shape) != 3:
                raise ValueError(
                    f"Expected the embedding layer {self.embedding_path!r} to return "
                    f"(B, L, E). Received: output of shape {tuple(z.shape)}")
            self.input_shape = tuple(int(n) for n in z.shape[1:])
        # By construction run from the explained tensor the model is the model; checked
        # once, as the intercepted call could be bypassed by an unusual layer.
        want = self.logits(self.structure.structure(self._context))
        if self.tokens and self.causal:
            want = causal_score(want, self._context)
        outputs = keras.tree.flatten(self._forward(z))
        if _outputs_differ(want, outputs) is not None:
            raise ValueError(
                "Expected the model's output to be computed from the explained tensor "
                f"{self.explained_name!r}; replacing it changed nothing consistent. "
                f"Received: model {self.model.name!r}")
        if not backend.is_connected(self._forward, z):
            raise ValueError(
                "Expected a model whose outputs can be differentiated with respect to "
                f"{self.explained_name!r}; the gradient is None. Received: model "
                f"{self.model.name!r}")
        self.shift_invariant = self.tokens and self._shift_invariant(z)
        if self.tokens:  # is the embedding fed the ids as they are? then call it alone
            direct = keras.ops.convert_to_numpy(self._embedding(self._ids))
            self._direct_embedding = bool(direct.shape == tuple(z.shape) and np.array_equal(
                direct.astype(np.float32), keras.ops.convert_to_numpy(z)))
        self.output_shapes = [tuple(o.shape) for o in outputs]
        single = len(self.output_shapes) == 1 and len(self.output_shapes[0]) >= 2
        self.num_classes = int(self.output_shapes[0][-1]) if single else None
        self._context = None
        self._layer_functions = {}
        self.forward = ModelFunction(self._forward, self.num_classes, self,
                                     input_shape=self.input_shape)

    def _shift_invariant(self, z):
        """Whether adding one constant to every embedding dimension leaves the outputs
        unchanged (a LayerNorm right after the embedding: BERT, DistilBERT, RoBERTa …).
        Then every gradient is orthogonal to (1, …, 1): its mean over the embedding is
        rounding noise, and per-token scores of plain gradients need "l2"."""
        a, b = (np.asarray(keras.ops.convert_to_numpy(keras.tree.flatten(self._forward(v))[0]),
                           np.float64) for v in (z, z + 1.0))
        return bool(np.allclose(a, b, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(a).max())))

    @property
    def explained_name(self):
        """What is differentiated, in words (an input's key or the embedding's path)."""
        if self.structure is None:
            return self.embedding_path if self.tokens else "the input"
        return self.embedding_path if self.tokens else f"input {self.explained_key!r}"

    @property
    def call_shape(self):
        """The shape of one row of what the compiled functions take (the packed inputs
        of a model with several inputs, the ids of a token model, else the input)."""
        if self.structure is not None:
            return (self.structure.size,)
        return self.token_shape if self.tokens else self.input_shape

    @property
    def call_dtype(self):
        if self.structure is not None:
            return self.structure.packed_dtype
        return "int32" if self.tokens else "float32"

    def _probe_batch(self):
        """Two packed rows of plausible inputs (ids in the vocabulary, half padded)."""
        rng = np.random.default_rng(0)
        values = {}
        for key in self.structure.keys:
            shape, dtype = (2,) + self.structure.shapes[key], self.structure.dtypes[key]
            if keras.backend.is_float_dtype(dtype):
                values[key] = rng.uniform(size=shape).astype(np.float32)
            elif dtype == "bool" or key == getattr(self, "pad_key", None):
                values[key] = np.ones(shape, dtype)
            elif key in CAUSAL_KEYS:  # the first half prompt, the second continuation
                values[key] = np.zeros(shape, dtype)
                half = shape[1] // 2
                values[key][:, :half] = key == "prompt_mask"
                values[key][:, half:] = key == "score_weights"
            elif self.tokens and key == self.token_key:
                values[key] = (np.arange(np.prod(shape)).reshape(shape)
                               % max(1, self.vocabulary_size or 1)).astype(dtype)
            else:
                values[key] = np.zeros(shape, dtype)
        if self.tokens:
            half = self.token_shape[0] // 2
            if self.pad_key is not None:
                values[self.pad_key][1, half:] = 0
                values[self.token_key][1, half:] = 0
            elif self.pad_id is not None:
                values[self.token_key][1, half:] = self.pad_id
        kind = self.structure.kind
        ordered = (values if kind == "dict" else values[self.structure.keys[0]]
                   if kind == "single" else [values[k] for k in self.structure.keys])
        return self.structure.pack(ordered, "probe")

    def _call_structured(self, z, change=None):
        """The logits model on every row of ``z`` (the explained tensor), the other inputs
        taken from the context ``space`` set, row ``r`` from input ``r % B``."""
        if self._context is None:
            raise RuntimeError("kd internal: the model's other inputs are unknown here "
                               "(call `space` on the packed inputs first)")
        values = _inputs.rows_of(self._context, keras.ops.shape(z)[0])
        if self.tokens:
            # Padding positions (and a causal LM's continuation: teacher forcing, as
            # Captum's LLM attribution) keep their own embedding in every row: an
            # integration path, noise, occlusion or decoy never moves them.
            keep = self._pad_values(values)
            if self.causal:
                keep = keep * keras.ops.cast(values["prompt_mask"], "float32")
            keep = keep[..., None]
            embedded = keras.ops.stop_gradient(  # the held positions': a constant
                _inputs.rows_of({"e": self._embedded}, keras.ops.shape(z)[0])["e"])
            z = keep * z + (1.0 - keep) * embedded
            with _inputs.replaced(self._embedding, z, integer_inputs=True):
                outputs = self.logits(self.structure.structure(values))
            return causal_score(outputs, values) if self.causal else outputs
        values[self.explained_key] = keras.ops.cast(
            self.logits.prepare(z), self.structure.dtypes[self.explained_key])
        return self.logits(self.structure.structure(values))

    def _pad_values(self, values):
        """``(rows, L)`` float from unpacked inputs: 0 at padding, 1 elsewhere."""
        ops = keras.ops
        if self.pad_key is not None:
            return ops.cast(ops.not_equal(ops.cast(values[self.pad_key], "int32"), 0),
                            "float32")
        ids = ops.cast(values[self.token_key], "int32")
        if self.pad_id is None:
            return ops.ones(ops.shape(ids), "float32")
        return ops.cast(ops.not_equal(ids, self.pad_id), "float32")

    def ids(self, x):
        """Token models: the ids of a batch of explainer inputs (packed or not)."""
        return self.structure.part(x, self.token_key) if self.structure is not None else x

    def embed(self, ids):
        """Token ids ``(B, L)`` → the embedded sequence ``(B, L, E)``, float32."""
        ops = keras.ops
        return ops.cast(self.embed_graph(ops.cast(ids, "int32")), "float32")

    def pad_mask(self, x):
        """``(B, L)`` float: 0 at padding positions, 1 elsewhere (``x``: explainer inputs;
        the model's own padding mask when it takes one)."""
        if self.structure is not None and self.pad_key is not None:
            return keras.ops.cast(self.structure.part(x, self.pad_key), "float32")
        ids = self.ids(x)
        if self.pad_id is None:
            return keras.ops.ones(keras.ops.shape(ids), "float32")
        return keras.ops.cast(keras.ops.not_equal(keras.ops.cast(ids, "int32"), self.pad_id),
                              "float32")

    @property
    def variables(self):
        """Every Keras variable the explained function reads: the user's model's and the
        logits copy's own output layers' (each once)."""
        found = {}
        for variable in list(self.model.variables) + list(self.logits.model.variables):
            found.setdefault(id(variable), variable)
        return list(found.values())

    def reference(self, z):
        """``(rows, L, E)``: the embedding of each input's ids with every non-special
        token replaced by the padding token (rows copy-major, as ``z``'s)."""
        ops = keras.ops
        ids = ops.cast(self._ids, "int32")
        special, pad = self._special_ids()
        keep = ops.zeros(ops.shape(ids), "bool")
        for token in special:
            keep = ops.logical_or(keep, ops.equal(ids, token))
        reference = ops.where(keep, ids, pad)
        if self.structure is not None:
            embedded = ops.cast(self._embedding(reference), "float32")
        else:
            embedded = self.embed(reference)
        return _inputs.rows_of({"e": embedded}, ops.shape(z)[0])["e"]

    def _special_ids(self):
        """``(special token ids, padding id)``: a keras_hub preprocessor's tokenizer's,
        else none and ``pad_id`` (0 by Keras's vocabulary convention)."""
        tokenizer = getattr(getattr(self.model, "preprocessor", None), "tokenizer", None)
        if tokenizer is not None:
            pad = getattr(tokenizer, "pad_token_id", None)
            special = [int(i) for i in getattr(tokenizer, "special_token_ids", []) or []
                       if i != pad]
            return special, int(pad if pad is not None else (self.pad_id or 0))
        return [], int(self.pad_id or 0)

    def space(self, x):
        """Explainer inputs → the tensor the methods differentiate (token ids embedded).

        For a model with several inputs ``x`` is packed (``kd._inputs``): the other inputs
        become the context every forward pass of this trace reads, until the next call.
        """
        if self.structure is None:
            self._ids = x
            return self.embed(x) if self.tokens else x
        self._context = self.structure.unpack(x)
        self._ids = self._context.get(getattr(self, "token_key", None))
        if not self.tokens:
            return keras.ops.cast(self._context[self.explained_key], "float32")
        if getattr(self, "_direct_embedding", False):
            # Checked once (_finish_structured): the layer's output is its own call on
            # the ids, so the model need not run to read it.
            self._embedded = keras.ops.cast(self._embedding(self._ids), "float32")
            return self._embedded
        box = []
        with _inputs.recorded(self._embedding, box, integer_inputs=True):
            self.logits(self.structure.structure(self._context))
        if not box:
            raise ValueError(
                f"Expected the embedding layer {self.embedding_path!r} to be called on the "
                f"token ids. Received: model {self.model.name!r}, where it is not called on "
                "integer inputs")
        self._embedded = keras.ops.cast(box[0], "float32")
        return self._embedded

    def reduce_tokens(self, maps, ids, reduction):
        """Token models: ``(b, L, E)`` maps reduced per token (``reduction`` "mean",
        "sum", "l2" or None to keep ``E``), padding positions set to 0. Other models:
        ``maps`` unchanged."""
        if not self.tokens:
            return maps
        ops = keras.ops
        if reduction == "mean":
            maps = ops.mean(maps, axis=-1)
        elif reduction == "sum":
            maps = ops.sum(maps, axis=-1)
        elif reduction == "l2":
            maps = ops.sqrt(ops.sum(ops.square(maps), axis=-1))
        mask = self.pad_mask(ids)  # the explainer inputs (packed or ids)
        return maps * (mask if reduction else mask[..., None])

    def _check_tail(self, ids, embedded):
        """The model from the embedding on must equal the model: refuse what differs
        (e.g. a padding mask consumed downstream, which noise and decoys cannot carry)."""
        if self.pad_id is not None:
            ids = ids.copy()
            ids[:, self.token_shape[0] // 2:] = self.pad_id
            embedded = self.embed(keras.ops.convert_to_tensor(ids))
        want = self.logits(keras.ops.convert_to_tensor(ids))
        if _outputs_differ(want, self._forward(embedded)) is not None:
            raise ValueError(
                "Expected the model's output to depend on the token ids only through "
                f"the embedding {self.embedding_path!r}; run from the embedded "
                "sequence it differs (a padding mask used downstream, mask_zero=True, "
                "or the ids used elsewhere). Pass `embedding_layer=` naming the layer "
                f"whose output carries everything. Received: model {self.model.name!r}")
        return True

    def prepare(self, x):
        """Raw inputs as the model takes them: ``preprocess(x)``, or ``x`` without one."""
        return self.logits.prepare(x)

    def _forward(self, x):
        if self.structure is not None:
            return as_float32(self._call_structured(x))
        return as_float32(self._tail(x)) if self.tokens else self.logits.forward(x)

    def _graph_input(self, x):
        """What the layer hooks' graphs take: the raw input prepared, or (token models)
        the embedded sequence itself."""
        return x if self.tokens else self.prepare(x)

    def _capture(self, layer):
        """``x -> (activations of layer, logits)`` on raw inputs, in one pass of the
        differentiated (logits) model; ``layer`` as ``DecoyConfig.layer`` takes it. For
        token models ``x`` is the embedded sequence and the layer must come after the
        embedding."""
        key = ("capture", layer if isinstance(layer, (str, int)) else id(layer))
        function = self._layer_functions.get(key)
        if function is None and (self.structure is not None or self.is_sublayer(layer)):
            function = self._capture_intercepted(layer)
            self._layer_functions[key] = function
        if function is None:
            model = self.logits.model
            # Resolved in the user's model (a layer object is theirs), then found by its
            # path in the logits copy, which shares every layer's name.
            names = "/".join(item.name for item in _graph.resolve(self.model, layer))
            if self.tokens and names not in [p for p, _ in self._layer_outputs()]:
                raise ValueError(
                    "Expected a layer after the embedding "
                    f"{self.embedding_path!r} (token models are explained from the "
                    "embedded sequence). Received: layer "
                    f"{names!r}; layers after it: "
                    + ", ".join(p for p, _ in self._layer_outputs()))
            path = _graph.resolve(model, names)
            graph = _graph.GraphFunction(model, None, start=self._start, capture=path)

            def function(x, at_layer=None):
                activations, outputs = graph(self._graph_input(x), at_capture=at_layer)
                return as_float32(activations), as_float32(outputs)

            function.layer_name = names
            function.layer_shape = tuple(_graph.output_shape(model, path))
            self._layer_functions[key] = function
        return function

    def _hooked(self, key, output_hook):
        """``x -> logits`` with ``output_hook(operation, outputs)`` applied to every
        operation's outputs of the logits model (built once per ``key``)."""
        if self.structure is not None:
            raise ValueError(
                "Expected a model with one input for a method that changes how gradients "
                "flow back through every layer (Guided Backprop). Received: model "
                f"{self.model.name!r} with inputs {self.structure.keys}")
        function = self._layer_functions.get(("hook", key))
        if function is None:
            graph = _graph.GraphFunction(self.logits.model, None, start=self._start,
                                         output_hook=output_hook)

            def function(x):
                return as_float32(graph(self._graph_input(x)))

            self._layer_functions[("hook", key)] = function
        return function

    def _capture_intercepted(self, layer):
        """``_capture`` by intercepting the layer's call while the model runs from the
        method's input: for models with several inputs (any layer), and for a sublayer a
        custom layer calls (not a graph node: keras_hub's ``transformer_block_1/ln_1``
        inside ``ViTEncoder``)."""
        path, target = _graph.find_layer(self.model, layer)

        def function(x, at_layer=None):
            box = []
            with _inputs.recorded(target, box, change=at_layer):
                outputs = self._forward(x)
            if not box:
                raise ValueError(f"Expected the layer {path!r} to be called by the model. "
                                 "Received: a layer the computation does not pass")
            return as_float32(box[0]), as_float32(outputs)

        function.layer_name = path
        activations, _ = self._on_probe(function)
        function.layer_shape = tuple(int(n) for n in activations.shape[1:])
        return function

    def _capture_attention(self):
        """``x -> ([probabilities of every attention call], logits)`` in one pass: each
        ``keras.layers.MultiHeadAttention`` the model calls computes its attention
        explicitly and its probabilities ``(B, heads, T, T)`` are read (in call order;
        ``at_layer`` is applied to each before the layer uses it). Attributes
        ``layer_names`` (the paths, in call order) and ``shapes``. Checked once on a probe:
        the logits equal the model's, and the probabilities' rows sum to 1."""
        function = self._layer_functions.get(("attention",))
        if function is not None:
            return function
        paths = _graph.sublayer_paths(self.model) if self.has_graph else []
        layers = [("/".join(p), layer) for p, layer in paths
                  if isinstance(layer, keras.layers.MultiHeadAttention)]
        inside = {p[:i] for p, layer in paths if isinstance(
            layer, keras.layers.MultiHeadAttention) for i in range(len(p) + 1)}
        other = sorted({type(layer).__name__ for p, layer in paths
                        if "attention" in type(layer).__name__.lower() and p not in inside
                        and not isinstance(layer, keras.layers.MultiHeadAttention)})
        if not layers or other:
            raise ValueError(
                "Expected a model whose attention is computed by keras.layers."
                "MultiHeadAttention layers (attention methods read their probabilities). "
                "Received: " + (f"attention layers of class {', '.join(other)}, which "
                                "compute it their own way" if other else
                                f"no MultiHeadAttention in model {self.model.name!r}"))

        def function(x, at_layer=None):
            box = []
            with contextlib.ExitStack() as stack:
                for _, layer in layers:
                    stack.enter_context(_inputs.explicit_attention(layer, box, at_layer))
                outputs = self._forward(x)
            return [as_float32(a) for a in box], as_float32(outputs)

        order = []
        with contextlib.ExitStack() as stack:  # the call order, and a probe's check
            for path, layer in layers:
                stack.enter_context(_inputs.intercept(
                    layer, lambda original, *a, _path=path, **k: (
                        order.append(_path), original(*a, **k))[1]))
            want = self._on_probe(self._forward)
        got_probabilities, got = self._on_probe(function)
        function.layer_names = order
        function.shapes = [tuple(int(n) for n in a.shape[1:]) for a in got_probabilities]
        self._check_same(want, got, "computing its attention explicitly")
        for name, shape in zip(order, function.shapes):
            if len(shape) != 3 or shape[1] != shape[2]:
                raise ValueError(
                    "Expected self-attention (probabilities (heads, T, T)) for attention "
                    f"methods. Received: {name!r} with probabilities of shape {shape}")
        self._layer_functions[("attention",)] = function
        return function

    def _on_probe(self, function):
        """``function`` on one probe input of the explained space (models with several
        inputs: a probe's other inputs, and the context a compiled function may be
        tracing with put back after)."""
        if self.structure is not None:
            saved = self._context
            try:
                return function(self.space(keras.ops.convert_to_tensor(
                    self._probe_batch()[:1])))
            finally:
                self._context = saved
        if any(n is None for n in self.input_shape):
            raise ValueError(
                "Expected a fully known input shape to read the model's layers. Received: "
                f"input shape {self.input_shape}; pass `input_shape=`")
        probe = np.random.default_rng(0).uniform(size=(1,) + self.input_shape)
        return function(keras.ops.convert_to_tensor(probe.astype(np.float32)))

    def _check_same(self, want, got, how):
        """Refuses a changed computation whose outputs differ from the model's."""
        difference = _outputs_differ(want, got)
        if difference is not None:
            raise ValueError(
                f"Expected the model's outputs unchanged when {how}. Received: a largest "
                f"difference of {difference:.3g} in model {self.model.name!r}")

    def is_sublayer(self, layer):
        """``is_sublayer`` for this model; an unknown name raises listing every layer and
        sublayer in the order the model calls them (a probe run), then those it never
        calls."""
        try:
            return is_sublayer(self.model, layer)
        except ValueError as error:
            if not str(error).startswith("Expected `layer` to name a layer"):
                raise
            paths = _graph.sublayer_paths(self.model)
            order = []
            with contextlib.ExitStack() as stack:
                for path, item in paths:
                    stack.enter_context(_inputs.intercept(
                        item, lambda original, *a, _item=item, **k: (
                            order.append(id(_item)), original(*a, **k))[1]))
                try:
                    self._on_probe(self._forward)
                except Exception:  # noqa: BLE001 - the listing order only
                    pass
            rank = {key: i for i, key in reversed(list(enumerate(order)))}
            ordered = sorted(paths, key=lambda p: rank.get(id(p[1]), len(rank)))
            raise ValueError(
                "Expected `layer` to name a layer of the model (a name, a path "
                "'outer/inner' or a unique end of one); its layers, in call order: "
                + ", ".join("/".join(p) for p, _ in ordered)
                + ". Received: " + (f"the layer object {layer.name!r}" if isinstance(
                    layer, keras.layers.Layer) else f"layer={layer!r}")) from None

    def on_input(self, layer):
        """A functional model of the sublayer ``layer`` alone, when the model applies it
        to its (prepared) input itself (a vision transformer's patch embedding), else
        None: checked on a probe input. Its graph is what receptive-field crops read."""
        _, target = _graph.find_layer(self.model, layer)
        box = []

        def first_input(original, *args, **kwargs):
            box.append(args[0] if args else None)
            return original(*args, **kwargs)

        def run(x):
            with _inputs.intercept(target, first_input):
                self._forward(x)
            return x

        probe = self._on_probe(run)
        seen = box[0] if box else None
        prepared = self.prepare(probe)
        if seen is None or tuple(seen.shape) != tuple(prepared.shape) or not np.allclose(
                keras.ops.convert_to_numpy(seen), keras.ops.convert_to_numpy(prepared),
                atol=1e-6):
            return None
        inputs = keras.Input(tuple(prepared.shape[1:]))
        return keras.Model(inputs, target(inputs), name=f"{target.name}_on_input")

    def vision_layout(self):
        """The ``kd._vit.Layout`` of a keras_hub vision-transformer backbone in the model,
        or None (read once)."""
        if not hasattr(self, "_vision"):
            self._vision = _vit.layout(self.model) if self.has_graph else None
        return self._vision

    def layer_function(self, layer):
        """``z -> F_l(z)``: the layer's output from the explained tensor (models with
        several inputs; the decoys' constraint), with ``__name__`` the layer's path."""
        capture = self._capture(layer)

        def function(z):
            return capture(z)[0]

        function.__name__ = capture.layer_name
        return function

    def _layer_outputs(self):
        found = _graph.layer_outputs(self.logits.model)
        if self.structure is not None and self.tokens:  # sequences of any length: L
            length = self.token_shape[0]
            found = [(p, (length,) + s[1:] if s and s[0] is None else s) for p, s in found]
        if not self.tokens:
            return found
        names = [path for path, _ in found]  # token models: the layers after the embedding
        return found[names.index(self.embedding_path) + 1:] if self.embedding_path in names \
            else found

    def model_outputs(self, x):
        """The user's model on raw inputs (serving predictions): ``model(preprocess(x))``."""
        if self.structure is not None:
            values = self.structure.unpack(x)
            if not self.tokens:
                values[self.explained_key] = keras.ops.cast(
                    self.prepare(values[self.explained_key]),
                    self.structure.dtypes[self.explained_key])
            return self.model(self.structure.structure(values), training=False)
        return self.model(self.prepare(x), training=False)

    def _probe(self):
        """The output shapes; refuses a model the gradient cannot pass through.

        One probe input is differentiated (when the input shape is fully known): a None
        gradient means every map would be zero, so the explainer raises instead.
        """
        if any(n is None for n in self.input_shape):
            return [tuple(o.shape) for o in self.logits.model.outputs]
        x = keras.ops.convert_to_tensor(np.random.default_rng(0).uniform(
            size=(1,) + self.input_shape).astype(np.float32))
        try:
            outputs = keras.tree.flatten(self._forward(x))
        except Exception as error:  # a shape or dtype the model cannot take
            raise ValueError(
                f"Expected the model to accept float32 inputs of shape "
                f"{(None,) + self.input_shape}"
                f"{' after `preprocess`' if self.preprocess is not None else ''}. "
                f"Received: calling it raised {type(error).__name__}: {error}"
            ) from error
        if not backend.is_connected(self._forward, x):
            raise ValueError(
                "Expected a model whose outputs can be differentiated with respect to its "
                "input; the gradient is None (the graph casts the input to integers, stops "
                "the gradient, or ignores the input), so every map would be zero. Received: "
                f"model {self.model.name!r}"
            )
        if not self.has_graph:
            _refuse_probabilities(outputs, self.model)
        return [tuple(o.shape) for o in outputs]


def _outputs_differ(want, got):
    """The largest difference between two nests of outputs where they are not equal
    within 1e-4 (relative, and of the larger of 1 and the output's scale), else None:
    the one test every changed computation (interception, explicit attention, the
    embedded tail) must pass before it is used."""
    for a, b in zip(keras.tree.flatten(want), keras.tree.flatten(got)):
        a, b = (np.asarray(keras.ops.convert_to_numpy(v), np.float64) for v in (a, b))
        if not np.allclose(a, b, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(a).max())):
            return float(np.abs(a - b).max())
    return None


def _embedding_path(model, dtype, embedding_layer):
    """The layers down to the token model's embedding, or None for other models."""
    if embedding_layer is not None:
        return _graph.resolve(model, embedding_layer)
    found = [path for path, layer in _graph.layer_paths(model)
             if isinstance(layer, keras.layers.Embedding)]
    if keras.backend.is_float_dtype(dtype) and not found:
        return None
    if not found:
        raise ValueError(
            "Expected a model with a floating-point input, or token ids fed to an "
            "Embedding layer (maps are then per token, taken at the embedding's output): "
            "saliency is a gradient with respect to the input, which does not exist for "
            "integer inputs, and this model has no Embedding layer (pass "
            "`embedding_layer=` naming the layer that embeds the ids). Received: a model "
            f"input of dtype {keras.backend.standardize_dtype(dtype)}")
    if len(found) > 1:
        raise ValueError(
            "Expected one Embedding layer, or `embedding_layer=` naming the one that "
            f"embeds the ids. Received: {len(found)} Embedding layers: "
            + ", ".join("/".join(path) for path in found))
    return _graph.resolve(model, "/".join(found[0]))


#: The inputs a causal LM's explainer takes beside the model's own (``(B, L)`` ints):
#: ``prompt_mask`` marks the positions attributed (the prompt; the others keep their own
#: embedding) and ``score_weights`` the tokens whose log-probability given the earlier
#: ones is explained (the continuation).
CAUSAL_KEYS = ("prompt_mask", "score_weights")


def is_causal_lm(model):
    """A keras_hub ``CausalLM`` (by class name: keras_hub need not be imported)."""
    return any(cls.__name__ == "CausalLM" for cls in type(model).__mro__)


def causal_score(logits, values):
    """``(R, 1)``: Σ_p w_p · log softmax(logits[p − 1])[ids_p], the log-probability of
    the tokens marked by ``score_weights`` given everything before them."""
    ops = keras.ops
    logits = ops.cast(logits, "float32")
    ids = ops.cast(values["token_ids"], "int32")
    weights = ops.cast(values["score_weights"], "float32")
    logp = ops.log_softmax(logits[:, :-1, :], axis=-1)
    picked = ops.take_along_axis(logp, ids[:, 1:, None], axis=-1)[..., 0]
    return ops.sum(picked * weights[:, 1:], axis=1, keepdims=True)


def _find_embedding(model, embedding_layer, dtypes):
    """``(path, layer)`` of the token embedding of a model with several inputs: the named
    one, else keras_hub's ``token_embedding`` (a graph node, or inside
    ``TokenAndPositionEmbedding``), else the one ``keras.layers.Embedding`` (keras_hub's
    ``ReversibleEmbedding`` is one)."""
    if embedding_layer is not None:
        return _graph.find_layer(model, embedding_layer)
    found = [(p, layer) for p, layer in _graph.sublayer_paths(model)
             if isinstance(layer, keras.layers.Embedding)]
    named = [(p, layer) for p, layer in found if p[-1] == "token_embedding"]
    candidates = {id(layer): ("/".join(p), layer) for p, layer in (named or found)}
    if len(candidates) == 1:
        return next(iter(candidates.values()))
    if not candidates:
        raise ValueError(
            "Expected `explain_input` naming the floating-point input to explain, or a token "
            "model whose ids go through an Embedding (its output is explained). Received: "
            f"a model with inputs {dtypes} and no Embedding layer (pass `embedding_layer=` "
            "naming the layer that embeds the ids)")
    raise ValueError(
        "Expected one token Embedding layer, or `embedding_layer=` naming the one that "
        f"embeds the ids. Received: {len(candidates)} Embedding layers: "
        + ", ".join(p for p, _ in candidates.values()))


def is_sublayer(model, layer):
    """Whether ``layer`` names a sublayer a custom layer calls (not a graph node) of a
    functional model; an unknown name raises, listing graph layers and sublayers."""
    if graph_io(model) is None or isinstance(layer, int) or callable(layer) and not \
            isinstance(layer, keras.layers.Layer):
        return False
    try:
        _graph.resolve(model, layer)
        return False
    except ValueError:
        _, found = _graph.find_layer(model, layer)  # raises, listing every path
    return id(found) not in {id(item) for _, item in _graph.layer_paths(model)}


def _embedding_inside_a_layer(model, dtype, embedding_layer):
    """Whether a one-input token model's embedding is a sublayer of a custom layer (not
    a graph node): named so, or found only there."""
    if keras.backend.is_float_dtype(dtype):
        return False
    nodes = {id(layer) for _, layer in _graph.layer_paths(model)}
    if embedding_layer is not None:
        if isinstance(embedding_layer, int) or "/" in str(embedding_layer) and any(
                "/".join(p) == embedding_layer for p, _ in _graph.layer_paths(model)):
            return False
        try:
            _, layer = _graph.find_layer(model, embedding_layer)
        except ValueError:
            return False
        return id(layer) not in nodes
    if any(isinstance(layer, keras.layers.Embedding) for _, layer in _graph.layer_paths(model)):
        return False
    return any(isinstance(layer, keras.layers.Embedding)
               for _, layer in _graph.sublayer_paths(model))


def _sequence_length(model, spec, input_shape):
    """The token sequence length: the input's, ``input_shape=(L,)``, or the keras_hub
    preprocessor's ``sequence_length``."""
    declared = spec.shape[1] if len(spec.shape) == 2 else None
    if input_shape is not None:
        given = _shape(input_shape)
        if len(given) != 1 or (declared is not None and declared != given[0]):
            raise ValueError(
                f"Expected `input_shape=(L,)`, the token sequence length"
                f"{'' if declared is None else f' {declared}'}. Received: "
                f"input_shape={input_shape!r}")
        return given[0]
    if declared is not None:
        return int(declared)
    length = getattr(getattr(model, "preprocessor", None), "sequence_length", None)
    if isinstance(length, (int, np.integer)) and length > 0:
        return int(length)
    raise ValueError(
        "Expected a known token sequence length: pass `input_shape=(L,)` (the model takes "
        "sequences of any length and has no preprocessor with a `sequence_length`). "
        "Received: input_shape=None")


def _known_shape(spec, key, length):
    """An input's shape without the batch axis, ``None`` axes of a per-token input
    ``(B, L)`` filled with ``length``; other unknown axes refused."""
    shape = tuple(spec.shape[1:])
    if length is not None and len(shape) == 1 and shape[0] is None:
        shape = (length,)
    if any(n is None for n in shape):
        raise ValueError(
            f"Expected the model's input {key!r} to have a known shape (every axis but the "
            f"batch). Received: shape {(None,) + shape}")
    return tuple(int(n) for n in shape)


def _check_pad_id(pad_id, vocabulary_size):
    if pad_id is None:
        return None
    if (isinstance(pad_id, bool) or not isinstance(pad_id, (int, np.integer)) or pad_id < 0
            or (vocabulary_size is not None and pad_id >= vocabulary_size)):
        raise ValueError(
            f"Expected `pad_id` to be a token id in [0, {vocabulary_size}). "
            f"Received: pad_id={pad_id!r}")
    return int(pad_id)


def _check_dtype(dtype):
    if not keras.backend.is_float_dtype(dtype):
        raise ValueError(
            "Expected a model with a floating-point input: saliency is a gradient with "
            "respect to the input, which does not exist for integer inputs (e.g. token ids "
            "fed to an Embedding; maps would be all zeros). Received: a model input of "
            f"dtype {keras.backend.standardize_dtype(dtype)}"
        )


def _refuse_probabilities(outputs, model):
    """A subclassed model's softmax cannot be removed on a copy: refuse probabilities."""
    flat = outputs
    if len(flat) != 1 or len(flat[0].shape) != 2 or flat[0].shape[-1] < 2:
        return
    values = keras.ops.convert_to_numpy(flat[0]).astype(np.float64)
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


class ModelFunction:
    """``forward(x) -> logits``, what methods differentiate, with the class count their
    budgets need and two generic hooks into the model's graph.

    Args:
        fn: a callable from a batch of inputs to the model's logits.
        num_classes: the size of the class axis, or None (no class axis).
        view: the ``ModelView`` whose graph the hooks read, or None (a model without a
            readable layer graph: the hooks raise).
        input_shape: the shape of one input ``x`` (``None`` axes unknown), or None.
    """

    def __init__(self, fn, num_classes, view=None, input_shape=None):
        self.fn = fn
        self.num_classes = num_classes
        self._view = view
        self.input_shape = None if input_shape is None else tuple(input_shape)

    def __call__(self, x):
        return self.fn(x)

    @property
    def model(self):
        """The user's model, or None (a function without one)."""
        return None if self._view is None else self._view.model

    def reference(self, x):
        """Token models: the embedded reference of the inputs the current ``space`` call
        took (special tokens kept, the others padding), one row per row of ``x``
        (copy-major); ``x=None`` only checks that there is one."""
        if self._view is None or not self._view.tokens:
            raise ValueError(
                "Expected a token model for baseline='reference' (special tokens kept, the "
                "others padded). Received: a model without token ids")
        return None if x is None else self._view.reference(x)

    def _graph_view(self, purpose):
        if self._view is None:
            raise ValueError(
                "Expected a functional or Sequential model (whose layers can be read) for "
                f"{purpose}. Received: a model without a readable layer graph")
        return self._view

    def layer_forward(self, layer):
        """Capture hook: ``x -> (activations of layer, logits)`` in one pass, with
        ``layer_name`` and ``layer_shape`` attributes; ``layer`` as ``DecoyConfig.layer``
        takes it (a name searched through nested models, a path, an index or a layer).

        Raises:
            ValueError: the model's graph cannot be read, or ``layer`` is unknown.
        """
        return self._graph_view("a method that reads a layer's activations")._capture(layer)

    def with_output_hook(self, key, output_hook):
        """Gradient-override hook: ``x -> logits`` where ``output_hook(operation,
        outputs) -> outputs`` wraps every operation's outputs (e.g. with an identity
        whose gradient differs); the forward values must stay the model's. Built once
        per ``key``.

        Raises:
            ValueError: the model's graph cannot be read.
        """
        return self._graph_view("a method that changes how gradients flow back")._hooked(
            key, output_hook)

    def attention_forward(self):
        """Attention hook: ``x -> ([probabilities (B, heads, T, T) of every
        MultiHeadAttention call, in call order], logits)`` in one pass, with ``at_layer``
        applied to each as ``layer_forward``'s; attributes ``layer_names`` and ``shapes``.

        Raises:
            ValueError: the model's graph cannot be read, or its attention is not
                computed by ``keras.layers.MultiHeadAttention`` layers.
        """
        return self._graph_view("an attention method")._capture_attention()

    def vision_layout(self):
        """How a vision transformer's tokens lie on the image (``kd._vit.Layout``: prefix
        tokens, patch grid, patch size), or None: not a keras_hub ViT/DeiT/DINOv2."""
        return None if self._view is None else self._view.vision_layout()

    def vision_default_layer(self):
        """A vision transformer's default CAM layer: its last block's pre-attention norm
        (a path)."""
        found = self.vision_layout()
        return _vit.default_layer(self._view.model, found)

    def layers(self):
        """``[(path, layer, node)]`` of every layer of the model, sublayers custom layers
        call included; ``node``: whether it is a node of the (nested) graphs, which the
        gradient-override hook reaches, rather than a sublayer.

        Raises:
            ValueError: the model's graph cannot be read.
        """
        model = self._graph_view("a method that reads the model's layers").model
        nodes = {id(layer) for _, layer in _graph.layer_paths(model)}
        return [("/".join(path), layer, id(layer) in nodes)
                for path, layer in _graph.sublayer_paths(model)]

    def layer_outputs(self):
        """``[(path, output shape)]`` of the differentiated model's layers, in the order
        the graph computes them (``path``: names through nested models, "outer/inner")."""
        return self._graph_view("a method that searches the model's layers")._layer_outputs()
