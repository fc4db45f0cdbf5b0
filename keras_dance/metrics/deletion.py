"""Deletion and insertion curves (Petsiuk et al., RISE, BMVC 2018)."""

import numpy as np

from keras_dance import _validation
from keras_dance._validation import as_baseline, as_maps
from keras_dance.metrics._common import ClassProbability, as_classifier, check_token_baseline


def _order(maps, spatial_ndim, rank):
    """Positions sorted by saliency, most salient first: ``(B, positions)``."""
    if not _validation.is_choice(rank, ("absolute", "signed")):
        raise ValueError(f"Expected `rank` 'absolute' or 'signed'. Received: rank={rank!r}")
    scores = np.asarray(maps, np.float32)
    if rank == "absolute":
        scores = np.abs(scores)
    if scores.ndim - 1 > spatial_ndim:
        # max |E| over channels (display recipe); signed: the channels' sum.
        scores = scores.max(axis=-1) if rank == "absolute" else scores.sum(axis=-1)
    flat = scores.reshape(len(scores), -1)
    return np.argsort(-flat, axis=1, kind="stable")


def _curve(model, x, maps, targets, steps, baseline, batch_size, insert, rank, preprocess):
    as_classifier(model)
    x = _validation.as_input_batch(x, tuple(model.inputs[0].shape[1:]))
    maps = as_maps(maps)
    if maps.shape != x.shape:
        raise ValueError(
            f"Expected `maps` with the shape of `x` {x.shape}. Received: maps.shape={maps.shape}"
        )
    steps = _validation.check_positive_int(steps, "steps")
    check_token_baseline(model, baseline)
    probability = ClassProbability(model, x, targets, batch_size, preprocess)
    spatial_ndim = x.ndim - 2 if x.ndim >= 3 else 1
    order = _order(maps, spatial_ndim, rank)
    positions = order.shape[1]
    counts = np.round(np.linspace(0, positions, steps + 1)).astype(int)
    fill = as_baseline(baseline, x.shape[1:])
    curves = np.zeros((len(x), steps + 1), np.float32)
    spatial = x.shape[1:1 + spatial_ndim]
    for b in range(len(x)):
        rank = np.empty(positions, np.int64)
        rank[order[b]] = np.arange(positions)
        rank = rank.reshape(spatial)
        if x.ndim - 1 > spatial_ndim:
            rank = rank[..., None]
        rows = []
        for count in counts:
            removed = rank < count
            if insert:
                rows.append(np.where(removed, x[b], fill))
            else:
                rows.append(np.where(removed, fill, x[b]))
        rows = np.stack(rows).astype(np.float32)
        curves[b] = probability(rows, np.full(len(rows), probability.targets[b]))
    fractions = counts / positions
    auc = np.trapezoid(curves, fractions, axis=1) if hasattr(np, "trapezoid") else np.trapz(
        curves, fractions, axis=1)
    return auc.astype(np.float32), curves, fractions


def deletion(model, x, maps, targets=None, steps=32, baseline=0.0, batch_size=256,
             rank="absolute", return_curves=False, preprocess=None):
    """Deletion AUC: the class probability as the most salient features are removed.

    Positions (pixels; all channels together) are ranked by ``max_c |E|`` (or signed, see
    ``rank``); at step ``k``
    of ``steps`` the top ``round(k/steps · n)`` positions are set to ``baseline`` and the
    softmax probability ``p_k`` of the target is taken on logits (output activations are
    removed first, as the explainer does). ``AUC = ∫ p dfraction`` (trapezoid).
    Lower is better: a faithful map removes the evidence first.

    Args:
        model: the classifier.
        x: ``(B, *input_shape)``.
        maps: saliency maps of ``x``'s shape.
        targets: class per input; None: the predicted class. Defaults to None.
        steps: points on the curve minus one. Defaults to 32.
        baseline: value of a removed feature (scalar or one input); for token models a
            token id (word deletion by the padding token: 0). Defaults to 0.0.
        batch_size: rows per model call (the memory knob). Defaults to 256.
        rank: "absolute" ranks positions by ``max_c |E|``; "signed" by ``Σ_c E`` (most
            positive evidence first). Defaults to "absolute".
        return_curves: also return ``(curves (B, steps+1), fractions)``.
        preprocess: the explainer's ``preprocess``, applied before the model (``x`` and
            ``baseline`` are raw inputs). Defaults to None.

    Returns:
        ``(B,)`` float32 AUCs (and the curves).
    """
    auc, curves, fractions = _curve(model, x, maps, targets, steps, baseline, batch_size,
                                    insert=False, rank=rank, preprocess=preprocess)
    return (auc, curves, fractions) if return_curves else auc


def insertion(model, x, maps, targets=None, steps=32, baseline=0.0, batch_size=256,
              rank="absolute", return_curves=False, preprocess=None):
    """Insertion AUC: starting from ``baseline``, the most salient features are restored
    first; higher is better. Same conventions as ``deletion``."""
    auc, curves, fractions = _curve(model, x, maps, targets, steps, baseline, batch_size,
                                    insert=True, rank=rank, preprocess=preprocess)
    return (auc, curves, fractions) if return_curves else auc
