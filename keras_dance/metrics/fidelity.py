"""Saliency fidelity (DANCE paper, after Dabkowski & Gal 2017) — our reading."""

import numpy as np
import tensorflow as tf

from keras_dance import _validation
from keras_dance._logits import LogitsModel
from keras_dance.metrics._common import as_maps, same_shape
from keras_dance.postprocess import postprocess


def _normalise(maps, mode, has_channels):
    if mode == "postprocess":
        shown = postprocess(maps, reduce_channels=has_channels)
        return shown[..., None] if has_channels else shown
    if mode == "minmax":
        flat = maps.reshape(len(maps), -1)
        low, high = flat.min(1), flat.max(1)
        span = np.where(high > low, high - low, 1.0)
        scaled = (flat - low[:, None]) / span[:, None]
        scaled = np.where((high > low)[:, None], scaled, 1.0)
        return scaled.reshape(maps.shape)
    raise ValueError(f"Expected `normalise` 'postprocess' or 'minmax'. Received: {mode!r}")


def fidelity(model, x, maps, targets=None, normalise="postprocess", batch_size=256):
    """Saliency fidelity: ``SF(E, x) = −log( F^c(Ẽ ∘ x) / F^c(Ē ∘ x) )``; lower is better.

    ``Ẽ`` is the map normalised to [0, 1] (``normalise="postprocess"``: the display recipe,
    channels reduced and broadcast back; ``"minmax"``: the signed map scaled per sample),
    ``Ē`` a map filled with ``Ẽ``'s mean, ``F^c`` the softmax probability of class ``c``
    (on logits). A constant map scores exactly 0; a map that keeps the evidence scores
    below 0. The paper's formula is garbled in the available text; this reading
    (PAPERS.md §1) compares the map with a mask of the same total mass.

    Args:
        model: the classifier.
        x: ``(B, *input_shape)``.
        maps: maps of ``x``'s shape.
        targets: the class per input; None: the predicted class. Defaults to None.
        normalise: "postprocess" or "minmax". Defaults to "postprocess".
        batch_size: rows per model call. Defaults to 256.

    Returns:
        ``(B,)`` float32.
    """
    x = _validation.as_input_batch(x, tuple(model.inputs[0].shape[1:]))
    maps = as_maps(maps)
    same_shape(x, maps, "x", "maps")
    has_channels = x.ndim >= 3
    weights = _normalise(maps, normalise, has_channels)
    mean = weights.reshape(len(weights), -1).mean(axis=1).reshape((-1,) + (1,) * (x.ndim - 1))
    logits = LogitsModel(model)
    num_classes = int(logits.model.outputs[0].shape[-1])
    if targets is None:
        targets = np.argmax(logits(x).numpy(), axis=-1)
    targets = _validation.as_target_indices(targets, len(x), num_classes)
    masked = np.concatenate([weights * x, np.broadcast_to(mean, x.shape) * x]).astype(np.float32)
    probabilities = []
    for start in range(0, len(masked), batch_size):
        out = logits(masked[start:start + batch_size])
        probabilities.append((tf.nn.softmax(out) if num_classes > 1 else tf.sigmoid(out)).numpy())
    probabilities = np.concatenate(probabilities)
    index = np.concatenate([targets, targets]) if num_classes > 1 else np.zeros(2 * len(x), int)
    p = probabilities[np.arange(len(masked)), index].astype(np.float64)
    p = np.maximum(p, 1e-30)
    return (-np.log(p[:len(x)] / p[len(x):])).astype(np.float32)
