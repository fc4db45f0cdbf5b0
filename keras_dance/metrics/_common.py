"""Shared checks and reductions for the metrics (numpy)."""

import numpy as np


def as_maps(maps, name="maps"):
    array = np.asarray(maps, dtype=np.float32)
    if array.ndim < 2:
        raise ValueError(
            f"Expected `{name}` with a batch axis (rank >= 2). Received: {name}.shape={array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"Expected finite values in `{name}`. Received: NaN or Inf in {name}")
    return array


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
