"""Localisation against ground truth: relevance mass and the pointing game."""

import numpy as np

from keras_dance._validation import as_maps, as_masks, check_non_empty


def _relevance(maps, masks):
    maps = check_non_empty(as_maps(maps), "maps")
    masks = as_masks(masks)
    if maps.shape == masks.shape:
        return np.abs(maps), masks
    if maps.ndim == masks.ndim + 1:  # maps with channels, masks without
        if maps.shape[:-1] != masks.shape:
            raise ValueError(
                f"Expected `masks` of shape {maps.shape[:-1]} or {maps.shape}. "
                f"Received: masks.shape={masks.shape}"
            )
        return np.abs(maps).max(axis=-1), masks
    raise ValueError(
        f"Expected `masks` of shape {maps.shape[:-1]} or {maps.shape}. "
        f"Received: masks.shape={masks.shape}"
    )


def relevance_mass(maps, masks):
    """Fraction of the relevance inside the ground truth: ``Σ_{i∈M} |E_i| / Σ_i |E_i|``.

    Relevance is ``max_c |E|`` for maps with a channel axis. 1 is perfect; a uniform map
    scores the mask's area fraction; an all-zero map scores 0.

    Args:
        maps: ``(B, *spatial[, C])``.
        masks: boolean ``(B, *spatial)`` (or the maps' shape).

    Returns:
        ``(B,)`` float32.
    """
    relevance, masks = _relevance(maps, masks)
    flat = relevance.reshape(len(relevance), -1)
    inside = np.where(masks.reshape(len(masks), -1), flat, 0.0).sum(axis=1)
    total = flat.sum(axis=1)
    return np.where(total > 0, inside / np.where(total > 0, total, 1), 0.0).astype(np.float32)


def pointing_game(maps, masks):
    """Whether the most relevant position lies inside the ground truth (Zhang et al. 2016).

    Returns:
        ``(B,)`` bool.
    """
    relevance, masks = _relevance(maps, masks)
    flat = relevance.reshape(len(relevance), -1)
    top = flat.argmax(axis=1)
    return masks.reshape(len(masks), -1)[np.arange(len(flat)), top]
