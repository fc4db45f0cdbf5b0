"""Shared checks and reductions for the metrics (numpy)."""

import keras
import numpy as np

from keras_dance import _tensor



def as_classifier(model, name="model"):
    """``model`` checked as a classifier the metrics can score: a built functional or
    Sequential ``keras.Model`` with one input and one ``(B, classes)`` output."""
    if not isinstance(model, keras.Model):
        if isinstance(getattr(model, "model", None), keras.Model) and hasattr(model, "explain"):
            raise TypeError(
                f"Expected `{name}` to be the keras.Model being explained. Received: a "
                f"kd.Explainer; pass `{name}=explainer.model` (and "
                "`preprocess=explainer.preprocess`)")
        raise TypeError(f"Expected `{name}` to be a keras.Model. Received: {name} of type "
                        f"{type(model).__name__}")
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise ValueError(
            f"Expected `{name}` to be a built functional or Sequential model (its input "
            f"and output shapes are read). Received: model {model.name!r}")
    if len(inputs) != 1 or len(outputs) != 1 or len(outputs[0].shape) != 2:
        raise ValueError(
            f"Expected `{name}` with one input and one output of shape (B, classes). "
            f"Received: {len(inputs)} input(s) and outputs of shapes "
            f"{[tuple(o.shape) for o in outputs]}")
    return model


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
        self.logits = LogitsModel(model, preprocess)
        self.num_classes = int(self.logits.model.outputs[0].shape[-1])
        if targets is None:
            targets = np.argmax(keras.ops.convert_to_numpy(self._logits(x)), axis=-1)
        self.targets = _validation.as_target_indices(targets, len(x), self.num_classes)

    def _logits(self, rows):
        return self.logits.forward(keras.ops.convert_to_tensor(rows, "float32"))

    def __call__(self, rows, classes):
        """``(N,)`` float64 probabilities of ``classes`` (N,) for ``rows`` (N, …), in passes
        of ``batch_size`` rows."""
        probabilities = []
        for start in range(0, len(rows), self.batch_size):
            out = self._logits(np.asarray(rows[start:start + self.batch_size], np.float32))
            out = _tensor.probabilities(out, self.num_classes)
            probabilities.append(keras.ops.convert_to_numpy(out))
        probabilities = np.concatenate(probabilities).astype(np.float64)
        index = np.asarray(classes) if self.num_classes > 1 else np.zeros(len(rows), int)
        return probabilities[np.arange(len(rows)), index]


def token_inputs(model):
    """Whether the model takes integer (token) inputs."""
    return not keras.backend.is_float_dtype(model.inputs[0].dtype)


def check_token_baseline(model, baseline):
    """Token models: a removed word becomes a token id (the padding id), nothing else."""
    if token_inputs(model) and (np.ndim(baseline) != 0 or float(baseline) != int(baseline)
                                or baseline < 0):
        raise ValueError(
            "Expected `baseline` to be a token id (e.g. the padding id 0) for a model with "
            f"integer token inputs: removed words are replaced by it. Received: "
            f"baseline={baseline!r}")
