"""Models with several inputs: one packed array through the compiled functions, and
layer outputs intercepted inside the model's own call.

A keras_hub text classifier takes a dict (``token_ids``, ``padding_mask`` and, for BERT,
``segment_ids``); an image model may take an image and its metadata. Every method
differentiates one tensor (the token embedding's output, or the input named with
``explain_input=``); the other inputs are held at the explained input's own values for
every row a method makes: Captum's layer-attribution semantics (its
``additional_forward_args``).

- ``InputStructure`` packs a batch of the model's inputs into one ``(B, N)`` array (int32
  when every input is integer or bool, else float32) so that the chunking, padding and
  compiling machinery, which moves one array, carries them unchanged; ``unpack`` returns
  the tensors in the model's own structure inside the compiled function.
- ``intercept`` runs a layer's calls through a function of the original call: the
  explained tensor replaces the embedding's output (whatever the model computes from the
  ids elsewhere, a padding mask or positions, still sees the ids), and a layer's output
  is recorded or changed where a CAM reads it. The layer may be a graph node or a
  sublayer a custom layer calls (keras_hub's ``TokenAndPositionEmbedding``); nothing is
  rebuilt and the user's model is unchanged once the call returns.
"""

import contextlib
import inspect

import keras
import numpy as np

from keras_dance import _validation

#: float32 holds every integer of magnitude below 2**24 exactly.
_FLOAT_EXACT = 2 ** 24


def input_structure(model):
    """``(keys, tensors, kind)`` of a functional model's inputs: ``kind`` "dict" (keys are
    the dict's), "list" (keys are positions) or "single"."""
    struct = getattr(model, "_inputs_struct", None)
    if isinstance(struct, dict):
        keys = sorted(struct)
        return keys, [struct[k] for k in keys], "dict"
    if isinstance(struct, (list, tuple)) and len(struct) > 1:
        flat = [keras.tree.flatten(item) for item in struct]
        if all(len(item) == 1 for item in flat):
            return list(range(len(struct))), [item[0] for item in flat], "list"
    inputs = list(model.inputs)
    if len(inputs) == 1:
        return [0], inputs, "single"
    return list(range(len(inputs))), inputs, "list"


class InputStructure:
    """A model's several inputs as one packed ``(B, N)`` array.

    Args:
        keys: the input dict's keys, or list positions.
        shapes: each input's shape without the batch axis (every axis known).
        dtypes: each input's dtype (Keras's standard names).
        kind: "dict" or "list": what the model is called with.
        extra: keys packed for the explainer itself, not passed to the model (a causal
            LM's ``prompt_mask`` and ``score_weights``), listed last in ``keys``.
    """

    def __init__(self, keys, shapes, dtypes, kind, extra=()):
        self.keys, self.kind = list(keys), kind
        self.model_keys = [k for k in self.keys if k not in extra]
        self.shapes = {k: tuple(int(n) for n in s) for k, s in zip(keys, shapes)}
        self.dtypes = dict(zip(keys, dtypes))
        self.sizes = {k: int(np.prod(self.shapes[k], dtype=np.int64)) for k in keys}
        self.offsets, offset = {}, 0
        for key in self.keys:
            self.offsets[key] = offset
            offset += self.sizes[key]
        self.size = offset
        whole = all(keras.backend.standardize_dtype(d).startswith(("int", "uint", "bool"))
                    for d in dtypes)
        self.packed_dtype = "int32" if whole else "float32"

    def describe(self):
        return "{" + ", ".join(f"{k!r}: {(None,) + self.shapes[k]} {self.dtypes[k]}"
                               for k in self.keys) + "}"

    def _items(self, x, name):
        if self.kind == "single":
            return [(self.keys[0], x)]
        if self.kind == "dict":
            if not isinstance(x, dict) or set(x) != set(self.keys):
                got = sorted(x) if isinstance(x, dict) else type(x).__name__
                raise ValueError(
                    f"Expected `{name}` to be a dict of the model's inputs "
                    f"{self.describe()}. Received: {name} with keys {got}"
                    if isinstance(x, dict) else
                    f"Expected `{name}` to be a dict of the model's inputs "
                    f"{self.describe()}. Received: {name} of type {got}")
            return [(k, x[k]) for k in self.keys]
        if not isinstance(x, (list, tuple)) or len(x) != len(self.keys):
            raise ValueError(
                f"Expected `{name}` to be a list of the model's {len(self.keys)} inputs "
                f"{self.describe()}. Received: {name} of type {type(x).__name__}"
                + (f" with {len(x)} items" if isinstance(x, (list, tuple)) else ""))
        return list(zip(self.keys, x))

    def pack(self, x, name="x"):
        """A batch in the model's structure → numpy ``(B, N)`` of ``packed_dtype``.

        Raises:
            TypeError / ValueError: a missing or extra input, a wrong shape or dtype, rows
                that disagree, NaN or Inf, integers a float32 pack cannot hold exactly;
                each names the input (``x['token_ids']``).
        """
        parts, batch = [], None
        for key, value in self._items(x, name):
            label = f"{name}[{key!r}]"
            array = _validation.as_numeric_array(_validation.as_numpy(value), label, "biuf")
            expected = (None,) + self.shapes[key]
            if array.ndim != len(expected) or array.shape[1:] != self.shapes[key]:
                raise ValueError(f"Expected `{label}` of shape {expected}. Received: "
                                 f"{label}.shape={array.shape}")
            if batch is None:
                batch = array.shape[0]
            elif array.shape[0] != batch:
                raise ValueError(
                    f"Expected every input of `{name}` to have the same batch size "
                    f"{batch}. Received: {label}.shape={array.shape}")
            if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                raise ValueError(f"Expected finite values in `{label}`. Received: NaN or Inf")
            integer = not keras.backend.is_float_dtype(self.dtypes[key])
            if integer and array.dtype.kind == "f" and not np.all(array == np.round(array)):
                raise ValueError(f"Expected integers in `{label}` (the model's input is "
                                 f"{self.dtypes[key]}). Received: non-integer values")
            if integer and array.size and np.abs(array).max() >= (
                    _FLOAT_EXACT if self.packed_dtype == "float32" else 2 ** 31):
                raise ValueError(f"Expected integers of magnitude below {_FLOAT_EXACT} in "
                                 f"`{label}`. Received: values up to {np.abs(array).max()}")
            parts.append(array.reshape(len(array), -1).astype(self.packed_dtype))
        if batch == 0:
            raise ValueError(f"Expected a non-empty batch. Received: {name} with 0 rows")
        return np.concatenate(parts, axis=1)

    def part(self, packed, key):
        """One input of a packed batch (tensor or numpy), in its own shape and dtype."""
        ops = keras.ops
        start = self.offsets[key]
        value = packed[:, start:start + self.sizes[key]]
        value = ops.reshape(value, (-1,) + self.shapes[key])
        dtype = self.dtypes[key]
        if dtype == "bool":
            return ops.not_equal(value, 0)
        return ops.cast(value, dtype)

    def unpack(self, packed):
        """A packed batch → ``{key: tensor}`` for every input."""
        return {key: self.part(packed, key) for key in self.keys}

    def structure(self, values):
        """``{key: tensor}`` → what the model is called with (a dict, or a list)."""
        if self.kind == "dict":
            return {k: values[k] for k in self.model_keys}
        if self.kind == "single":
            return values[self.model_keys[0]]
        return [values[k] for k in self.model_keys]


def _integer(value):
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return False
    name = keras.backend.standardize_dtype(dtype)
    return name.startswith(("int", "uint"))


@contextlib.contextmanager
def intercept(layer, function, integer_inputs=False):
    """While active, ``layer``'s calls return ``function(original_call, *args, **kwargs)``.

    With ``integer_inputs`` only calls whose first argument is an integer tensor are
    intercepted (an embedding's lookup, not keras_hub's ``ReversibleEmbedding`` run in
    reverse to make logits). The layer's own ``call`` is put back on exit, also after an
    error.
    """
    own = layer.__dict__.get("call")
    original = layer.call

    def call(*args, **kwargs):
        if integer_inputs and not (args and _integer(args[0])):
            return original(*args, **kwargs)
        return function(original, *args, **kwargs)

    object.__setattr__(layer, "call", call)
    try:
        yield
    finally:
        _put_back(layer, "call", own)


def _put_back(layer, name, own):
    """Restores the instance attribute ``name`` of ``layer`` (``own``: its value before it
    was set, None where the class's own was used)."""
    if own is None:
        object.__delattr__(layer, name)
    else:
        object.__setattr__(layer, name, own)


def replaced(layer, value, integer_inputs=False):
    """``layer``'s output replaced by ``value`` (cast to the layer's compute dtype)."""

    def function(original, *args, **kwargs):
        del original, args, kwargs
        return keras.ops.cast(value, layer.compute_dtype)

    return intercept(layer, function, integer_inputs)


def recorded(layer, box, change=None, integer_inputs=False):
    """Appends ``layer``'s first output to ``box`` (after ``change(output)``, which the
    rest of the model then uses)."""

    def function(original, *args, **kwargs):
        out = original(*args, **kwargs)
        if box:
            return out
        if change is not None:
            out = change(out)
        box.append(out)
        return out

    return intercept(layer, function, integer_inputs)


@contextlib.contextmanager
def explicit_attention(layer, box, change=None):
    """While active, the ``keras.layers.MultiHeadAttention`` ``layer`` computes its
    attention explicitly (query·key, softmax, then the values: what it does when asked
    for its scores), never with the fused ``ops.dot_product_attention`` that keeps no
    probabilities, and appends each call's probabilities ``(B, heads, T, S)`` to ``box``
    after ``change(probabilities)``, which the rest of the layer then uses. Both paths
    compute the same function (the probe checks the logits); flash attention is off
    while active. The layer is put back on exit, also after an error."""
    compute = layer._compute_attention
    signature = inspect.signature(compute)
    if "return_attention_scores" not in signature.parameters or not hasattr(
            layer, "_softmax"):
        raise ValueError(
            f"Expected a MultiHeadAttention whose attention can be computed explicitly. "
            f"Received: {type(layer).__name__} {layer.name!r}, which overrides it")
    own = layer.__dict__.get("_compute_attention")
    flash = layer.__dict__.get("_flash_attention")

    def explicit(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.arguments["return_attention_scores"] = True
        return compute(*bound.args, **bound.kwargs)

    def probabilities(original, *args, **kwargs):
        out = original(*args, **kwargs)
        if change is not None:
            out = change(out)
        box.append(out)
        return out

    object.__setattr__(layer, "_compute_attention", explicit)
    if flash:
        object.__setattr__(layer, "_flash_attention", False)
    try:
        with intercept(layer._softmax, probabilities):
            yield
    finally:
        _put_back(layer, "_compute_attention", own)
        if flash:
            object.__setattr__(layer, "_flash_attention", flash)


def rows_of(values, rows):
    """Each input's values for ``rows`` rows laid out copy-major (row ``r`` belongs to
    input ``r % B``, the layout every method and the decoy solver use)."""
    ops = keras.ops
    out = {}
    for key, value in values.items():
        batch = value.shape[0]
        if isinstance(rows, int) and isinstance(batch, int) and rows == batch:
            out[key] = value
            continue
        index = ops.mod(ops.arange(rows, dtype="int32"),
                        ops.cast(ops.shape(value)[0], "int32"))
        out[key] = ops.take(value, index, axis=0)
    return out
