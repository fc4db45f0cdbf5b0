"""SavedModel export with serving signatures (docs/export.md)."""

import contextlib
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_dance import backend
from keras_dance._files import replace_directory, staging_directory
# In process, text is tokenized in Python the way the exported graph does it (kd.text).
from keras_dance.text import read_vocabulary, tokenize  # noqa: F401

# Keras TextVectorization's default standardisation: lower case, punctuation removed.
_PUNCTUATION = r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']'


class _ServingModule(tf.Module):
    """Holds the models (so their variables are saved) and the signature functions."""


def export(explainer, path, overwrite=False, vocabulary=None):
    """See ``Explainer.export``."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(
            f"Expected `path` to be a directory path (str or os.PathLike). Received: "
            f"path={path!r}"
        )
    if "\0" in os.fspath(path):
        raise ValueError(
            f"Expected `path` to be a directory path without NUL bytes. Received: path={path!r}")
    if not isinstance(overwrite, bool):
        raise TypeError(
            f"Expected `overwrite` to be a bool. Received: overwrite={overwrite!r}"
        )
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
        raise FileExistsError(
            f"Expected `path` to be a new or empty directory (or overwrite=True). "
            f"Received: path={str(path)!r}, which exists and is not empty"
        )
    view = explainer.model_view
    hub = None
    # A causal LM's text signature would need prompt and continuation: not written (its
    # explain signatures take prompt_mask and score_weights by name).
    if vocabulary is None and explainer.tokens and not view.causal:
        from keras_dance.text import preprocessor_of

        hub = preprocessor_of(explainer.model)
    if vocabulary is not None:
        if view.structure is not None and view.structure.kind != "single":
            raise ValueError(
                "Expected no `vocabulary` for a model with several inputs: its "
                "explain_text signature runs the model's own keras_hub preprocessor. "
                f"Received: vocabulary for a model with inputs {view.structure.keys}")
        if not explainer.tokens:
            raise ValueError(
                "Expected `vocabulary` only for token models (integer ids through an "
                f"Embedding). Received: vocabulary for a model with inputs of shape "
                f"{explainer.input_shape}")
        vocabulary = read_vocabulary(vocabulary)
        size = explainer.model_view.vocabulary_size
        if size is not None and len(vocabulary) > size:
            raise ValueError(
                f"Expected at most {size} tokens in `vocabulary` (the embedding's input_dim). "
                f"Received: {len(vocabulary)} tokens")
    explainer.sync()
    module = _ServingModule()
    spec = tf.TensorSpec((None,) + view.call_shape, view.call_dtype, name="inputs")
    target_spec = tf.TensorSpec((None,), tf.int32, name="target")
    if backend.name() == "tensorflow":
        # Plain kernels only (no XLA anywhere): servable by any TensorFlow Serving build.
        function = explainer.compiled(jit_compile=False, portable=True)
        predict = explainer.model_view.model_outputs
        module.model = explainer.model
        module.logits = explainer.logits_model
        # F_l runs the model's own layers: their variables are saved with module.model.
    else:
        function, predict, module.weights = _converted(explainer, spec)
    pack = lambda inputs: inputs  # noqa: E731
    if view.structure is not None and view.structure.kind != "single":
        # A model with several inputs is served with its own inputs, by name; the
        # explainer's functions take them packed (kd._inputs), as in process.
        spec = {key: tf.TensorSpec((None,) + view.structure.shapes[key],
                                   view.structure.dtypes[key], name=str(key))
                for key in view.structure.keys}
        pack = lambda inputs: _pack(view.structure, inputs)  # noqa: E731

    @tf.function(input_signature=[spec])
    def serving_default(inputs):
        return {"predictions": predict(pack(inputs))}

    @tf.function(input_signature=[spec])
    def explain(inputs):
        packed = pack(inputs)
        maps, targets, _, _ = function(packed, tf.fill([tf.shape(packed)[0]], -1))
        return {"saliency": maps, "target": targets}

    @tf.function(input_signature=[spec, target_spec])
    def explain_target(inputs, target):
        maps, targets, _, _ = function(pack(inputs), target)
        return {"saliency": maps, "target": targets}

    module.serving_default = serving_default
    module.explain = explain
    module.explain_target = explain_target
    signatures = {"serving_default": serving_default, "explain": explain,
                  "explain_target": explain_target}
    if hub is not None:  # traced here: a tokenizer that cannot be, before any file
        signatures["explain_text"] = _explain_hub_text(module, explainer, function, hub, pack)
    with contextlib.ExitStack() as stack:
        staging = stack.enter_context(staging_directory(path.parent, f".{path.name}."))
        if vocabulary is not None:
            # The words as a file: the lookup table saves it as a SavedModel asset.
            words = stack.enter_context(staging_directory(path.parent, ".vocabulary."))
            (words / "vocabulary.txt").write_text("\n".join(vocabulary[2:]) + "\n")
            signatures["explain_text"] = _explain_text(
                module, explainer, function, str(words / "vocabulary.txt"))
        tf.saved_model.save(module, str(staging), signatures=signatures)
        replace_directory(staging, path)
    return path


def _pack(structure, inputs):
    """The served inputs (by name) packed as the explainer's functions take them."""
    dtype = tf.as_dtype(structure.packed_dtype)
    parts = [tf.reshape(tf.cast(inputs[key], dtype), [-1, structure.sizes[key]])
             for key in structure.keys]
    return tf.concat(parts, axis=1)


def _explain_hub_text(module, explainer, function, preprocessor, pack):
    """``explain_text`` of a keras_hub Task: raw strings → the model's own preprocessor
    (TensorFlow Text ops, in the graph) → tokens (the tokenizer's strings), ids, maps.

    Raises:
        ValueError: the preprocessor cannot be traced into a TensorFlow graph (before
            anything is written).
    """
    view = explainer.model_view
    tokenizer = preprocessor.tokenizer
    size = view.vocabulary_size or tokenizer.vocabulary_size()
    names = tf.constant([str(tokenizer.id_to_token(i)) for i in range(size)])
    module.preprocessor = preprocessor
    module.token_names = tf.Variable(names, trainable=False)

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string, name="text")])
    def explain_text(text):
        inputs = preprocessor(text)
        inputs = inputs[0] if isinstance(inputs, tuple) else inputs
        ids = tf.cast(inputs[view.token_key], tf.int32)
        packed = pack({key: inputs[key] for key in view.structure.keys})
        maps, targets, _, _ = function(packed, tf.fill([tf.shape(ids)[0]], -1))
        mask = tf.cast(inputs[view.pad_key], tf.bool) if view.pad_key else tf.ones_like(
            ids, tf.bool)
        return {"tokens": tf.gather(module.token_names, ids), "ids": ids,
                "mask": mask, "saliency": maps, "target": targets}

    try:
        explain_text.get_concrete_function()
    except Exception as error:  # a tokenizer that is not TensorFlow ops
        raise ValueError(
            "Expected a keras_hub preprocessor that runs in a TensorFlow graph (its "
            "tokenizer as TensorFlow Text ops) for the explain_text signature; nothing was "
            f"written. Received: {type(preprocessor).__name__} raised "
            f"{type(error).__name__}: {error}") from error
    return explain_text


def _converted(explainer, spec):
    """The explain and predict functions of a non-TensorFlow backend as TensorFlow
    functions (``backend.to_tensorflow``), and the ``tf.Variable``s they read.

    The explain function is converted for one chunk of ``inputs_per_pass`` inputs (a
    static shape: the decoy solver's and the chunking's shapes are then known) and run
    over the batch's chunks with ``tf.map_fn``, the last chunk padded by repeating the
    last input; maps depend on their own input only, so padding changes none.
    """
    view = explainer.model_view
    convert, weights = backend.to_tensorflow(view.variables)
    per = explainer.inputs_per_pass
    shape, dtype = tuple(view.call_shape), view.call_dtype
    chunk = convert(explainer.chunk_function(fuse=False),
                    [((per,) + shape, dtype), ((per,), "int32")])
    predict = convert(view.model_outputs, [((None,) + shape, dtype)])
    signature = (tf.TensorSpec((per,) + tuple(explainer.map_shape), tf.float32),
                 tf.TensorSpec((per,), tf.int32), tf.TensorSpec((per,), tf.float32),
                 tf.TensorSpec((per,), tf.float32))

    def function(inputs, targets):
        count = tf.shape(inputs)[0]
        chunks = (count + per - 1) // per
        pad = chunks * per - count

        def padded(t):
            t = tf.concat([t, tf.repeat(t[-1:], pad, axis=0)], 0)
            return tf.reshape(t, tf.concat([[chunks, per], tf.shape(t)[1:]], 0))

        outputs = tf.map_fn(lambda pair: tuple(chunk(pair[0], pair[1])),
                            (padded(inputs), padded(targets)), fn_output_signature=signature)
        return tuple(tf.reshape(o, tf.concat([[-1], tf.shape(o)[2:]], 0))[:count]
                     for o in outputs)

    return function, predict, weights


def _explain_text(module, explainer, function, words_file):
    """``explain_text``: raw sentences → their tokens, ids, maps and predicted class.

    Tokenised in the graph as Keras's ``TextVectorization`` does by default (lower case,
    punctuation removed, split on whitespace), truncated or padded to the model's length;
    ids as ``keras.layers.StringLookup`` over the vocabulary gives them, from a TensorFlow
    lookup table over the vocabulary file (an asset; the same on every backend): padding
    ``""`` → 0, unknown words → 1, the file's line ``k`` → ``k + 2``.
    """
    length = explainer.input_shape[0]
    initializer = tf.lookup.TextFileInitializer(
        words_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64,
        tf.lookup.TextFileIndex.LINE_NUMBER, value_index_offset=2)
    module.lookup = tf.lookup.StaticHashTable(initializer, default_value=1)

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string, name="text")])
    def explain_text(text):
        clean = tf.strings.regex_replace(tf.strings.lower(text), _PUNCTUATION, "")
        tokens = tf.strings.split(clean).to_tensor(default_value="", shape=[None, length])
        ids = tf.where(tokens == "", tf.constant(0, tf.int64), module.lookup.lookup(tokens))
        ids = tf.cast(ids, tf.int32)
        maps, targets, _, _ = function(ids, tf.fill([tf.shape(ids)[0]], -1))
        return {"tokens": tokens, "ids": ids, "saliency": maps, "target": targets}

    return explain_text


class ServedExplainer:
    """A SavedModel written by ``Explainer.export``, run through its signatures (a dataset
    worker's explainer for an exported model; TensorFlow alone, no Keras).

    Attributes:
        input_shape: one input's shape; ``dtype``: numpy int32 (token ids) or float32.
    """

    def __init__(self, path):
        self._loaded = tf.saved_model.load(path)  # keeps the variables alive
        self._explain = self._loaded.signatures["explain"]
        (_, tensor), = self._explain.structured_input_signature[1].items()
        self.input_shape = tuple(tensor.shape[1:])
        self.dtype = np.int32 if tensor.dtype.is_integer else np.float32

    def __call__(self, batch, targets=None):
        """``{"target", "predicted", "map"}`` numpy arrays for ``batch`` (the predicted
        classes' maps, or ``targets``' when given)."""
        outputs = self._explain(inputs=tf.constant(batch))
        predicted = outputs["target"].numpy()
        if targets is not None:
            outputs = self._loaded.signatures["explain_target"](
                inputs=tf.constant(batch), target=tf.constant(targets))
        return {"target": outputs["target"].numpy(), "predicted": predicted,
                "map": outputs["saliency"].numpy()}
