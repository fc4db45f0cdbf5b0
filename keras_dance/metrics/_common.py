"""Shared checks and reductions for the metrics (numpy)."""

import numpy as np


def _numeric(value, name):
    from keras_dance._validation import as_numeric_array

    return as_numeric_array(value, name)


def as_maps(maps, name="maps"):
    """Validated maps: numeric, rank >= 2 (a batch axis), finite; float32."""
    array = _numeric(maps, name).astype(np.float32)
    if array.ndim < 2:
        raise ValueError(
            f"Expected `{name}` with a batch axis (rank >= 2). Received: {name}.shape={array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"Expected finite values in `{name}`. Received: NaN or Inf in {name}")
    return array


def as_masks(masks, name="masks"):
    """Validated ground-truth masks: boolean, or numbers that are all 0 or 1."""
    array = _numeric(masks, name)
    if array.dtype.kind != "b":
        if not np.all(np.isfinite(array)) or not np.all((array == 0) | (array == 1)):
            raise ValueError(
                f"Expected `{name}` to be boolean (or 0/1 numbers). Received: {name} with "
                f"values other than 0 and 1 (e.g. NaN)"
            )
    return array.astype(bool)


def as_baseline(baseline, feature_shape, name="baseline"):
    """A finite baseline broadcast to one input's shape."""
    array = _numeric(baseline, name).astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"Expected a finite `{name}`. Received: {name} with NaN or Inf")
    try:
        return np.broadcast_to(array, feature_shape)
    except ValueError as error:
        raise ValueError(
            f"Expected `{name}` to be a scalar or broadcastable to one input "
            f"{tuple(feature_shape)}. Received: {name}.shape={array.shape}"
        ) from error


def same_shape(a, b, name_a, name_b):
    if np.shape(a) != np.shape(b):
        raise ValueError(
            f"Expected `{name_b}` with the shape of `{name_a}` {np.shape(a)}. "
            f"Received: {name_b}.shape={np.shape(b)}"
        )


def spatial(maps, has_channels):
    """``(B, *spatial)`` relevance: ``max_c |E|`` for inputs with a channel axis."""
    relevance = np.abs(maps)
    return relevance.max(axis=-1) if has_channels else relevance


class ClassProbability:
    """``p_c`` of rows of inputs, on logits (output activations removed, as the explainer
    does): softmax over the classes, or a sigmoid for a single output unit.

    Built once per metric call: the logits copy, the class count and the resolved targets
    (``None``: each input's predicted class). ``preprocess`` (the explainer's) is applied
    to the rows before the model, so inputs and baselines stay in the raw space.
    """

    def __init__(self, model, x, targets, batch_size, preprocess=None):
        from keras_dance import _validation
        from keras_dance._logits import LogitsModel

        self.batch_size = _validation.check_positive_int(
            batch_size, "batch_size", maximum=_validation.MAX_BATCH_SIZE)
        if preprocess is not None and not callable(preprocess):
            raise TypeError(
                f"Expected `preprocess` to be a callable or None. Received: "
                f"preprocess={preprocess!r}"
            )
        self.preprocess = preprocess
        self.logits = LogitsModel(model)
        self.num_classes = int(self.logits.model.outputs[0].shape[-1])
        if targets is None:
            targets = np.argmax(self._logits(x).numpy(), axis=-1)
        self.targets = _validation.as_target_indices(targets, len(x), self.num_classes)

    def _logits(self, rows):
        import tensorflow as tf

        rows = tf.convert_to_tensor(rows, tf.float32)  # preprocess_input edits numpy in place
        return self.logits(rows if self.preprocess is None else self.preprocess(rows))

    def __call__(self, rows, classes):
        """``(N,)`` float64 probabilities of ``classes`` (N,) for ``rows`` (N, …), in passes
        of ``batch_size`` rows."""
        import tensorflow as tf

        probabilities = []
        for start in range(0, len(rows), self.batch_size):
            out = self._logits(np.asarray(rows[start:start + self.batch_size], np.float32))
            out = tf.nn.softmax(out) if self.num_classes > 1 else tf.sigmoid(out)
            probabilities.append(out.numpy())
        probabilities = np.concatenate(probabilities).astype(np.float64)
        index = np.asarray(classes) if self.num_classes > 1 else np.zeros(len(rows), int)
        return probabilities[np.arange(len(rows)), index]


def token_inputs(model):
    """Whether the model takes integer (token) inputs."""
    import tensorflow as tf

    return not tf.as_dtype(model.inputs[0].dtype).is_floating


def check_token_baseline(model, baseline):
    """Token models: a removed word becomes a token id (the padding id), nothing else."""
    if token_inputs(model) and (np.ndim(baseline) != 0 or float(baseline) != int(baseline)
                                or baseline < 0):
        raise ValueError(
            "Expected `baseline` to be a token id (e.g. the padding id 0) for a model with "
            f"integer token inputs: removed words are replaced by it. Received: "
            f"baseline={baseline!r}")
