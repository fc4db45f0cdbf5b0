"""Sensitivity of a map to an input change (DANCE paper's robustness measure)."""

import numpy as np

from keras_dance._validation import as_maps, same_shape
from keras_dance.postprocess import postprocess


def sensitivity(maps, perturbed_maps, x, perturbed_x, processed=False):
    """``SS = ‖P(E(x)) − P(E(x̂))‖₂ / ‖x − x̂‖₂`` per sample; lower is more robust.

    ``P`` is the display recipe (``kd.postprocess``) so that maps of different methods
    share a scale; pass ``processed=True`` if the maps are already post-processed.

    Args:
        maps, perturbed_maps: maps of ``x`` and of ``x̂``.
        x, perturbed_x: the inputs; ``x ≠ x̂`` for every sample.

    Returns:
        ``(B,)`` float32.
    """
    maps, perturbed_maps = as_maps(maps), as_maps(perturbed_maps, "perturbed_maps")
    same_shape(maps, perturbed_maps, "maps", "perturbed_maps")
    x, perturbed_x = as_maps(x, "x"), as_maps(perturbed_x, "perturbed_x")
    same_shape(x, perturbed_x, "x", "perturbed_x")
    if len(x) != len(maps):
        raise ValueError(
            f"Expected as many inputs as maps ({len(maps)}). Received: len(x)={len(x)}"
        )
    if not processed:
        maps, perturbed_maps = postprocess(maps), postprocess(perturbed_maps)
    distance = np.linalg.norm((x - perturbed_x).reshape(len(x), -1), axis=1)
    if np.any(distance == 0):
        raise ValueError("Expected `perturbed_x` to differ from `x` for every sample. "
                         "Received: identical inputs")
    change = np.linalg.norm((maps - perturbed_maps).reshape(len(maps), -1), axis=1)
    return (change / distance).astype(np.float32)
