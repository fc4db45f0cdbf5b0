"""Saliency fidelity (DANCE paper, after Dabkowski & Gal 2017) — our reading."""

import numpy as np

from keras_dance import _validation
from keras_dance._validation import as_maps, same_shape
from keras_dance.metrics._common import ClassProbability, as_classifier, token_inputs
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


REFERENCES = ("mean_mask", "input")


def fidelity(model, x, maps, targets=None, normalise="postprocess", batch_size=256,
             preprocess=None, reference="mean_mask"):
    """Saliency fidelity: ``SF(E, x) = −log( F^c(Ẽ ∘ x) / F^c(ref) )``; lower is better.

    ``Ẽ`` is the map normalised to [0, 1] (``normalise="postprocess"``: the display recipe,
    channels reduced and broadcast back; ``"minmax"``: the signed map scaled per sample),
    ``F^c`` the softmax probability of class ``c`` (on logits). The paper's formula is
    garbled in the available text (docs/papers.md §1); both readings are offered:

    - ``reference="mean_mask"``: ``ref = Ē ∘ x``, ``Ē`` a map filled with ``Ẽ``'s mean —
      the map against a mask of the same total mass. A constant map scores exactly 0; a
      map that keeps the evidence better than its mass alone scores below 0.
    - ``reference="input"``: ``ref = x`` — how much of the class probability the masked
      input keeps (≥ 0 when masking only removes evidence; 0 for a map of ones).

    Args:
        model: the classifier.
        x: ``(B, *input_shape)``.
        maps: maps of ``x``'s shape.
        targets: the class per input; None: the predicted class. Defaults to None.
        normalise: "postprocess" or "minmax". Defaults to "postprocess".
        batch_size: rows per model call. Defaults to 256.
        preprocess: the explainer's ``preprocess``, applied before the model (``x`` is
            raw input). Defaults to None.
        reference: "mean_mask" or "input" (above). Defaults to "mean_mask".

    Returns:
        ``(B,)`` float32.
    """
    if not _validation.is_choice(reference, REFERENCES):
        raise ValueError(
            f"Expected `reference` to be one of {list(REFERENCES)}. Received: "
            f"reference={reference!r}"
        )
    as_classifier(model)
    if token_inputs(model):
        raise ValueError(
            "Expected a model with floating-point inputs: fidelity multiplies the input by "
            "the map, which means nothing for token ids. Use kd.metrics.deletion(..., "
            f"baseline=pad_id) (word deletion) instead. Received: model {model.name!r} "
            "with integer inputs")
    x = _validation.as_input_batch(x, tuple(model.inputs[0].shape[1:]))
    maps = as_maps(maps)
    same_shape(x, maps, "x", "maps")
    has_channels = x.ndim >= 3
    weights = _normalise(maps, normalise, has_channels)
    mean = weights.reshape(len(weights), -1).mean(axis=1).reshape((-1,) + (1,) * (x.ndim - 1))
    probability = ClassProbability(model, x, targets, batch_size, preprocess)
    compared = np.broadcast_to(mean, x.shape) * x if reference == "mean_mask" else x
    masked = np.concatenate([weights * x, compared]).astype(np.float32)
    p = np.maximum(probability(masked, np.tile(probability.targets, 2)), 1e-30)
    return (-np.log(p[:len(x)] / p[len(x):])).astype(np.float32)
