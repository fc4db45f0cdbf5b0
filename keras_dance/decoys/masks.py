"""Swappable features: patches sliding over the spatial axes (pure numpy)."""

import itertools

import numpy as np


def per_axis(value, ndim, name):
    """Broadcasts an int to one value per spatial axis, checking tuple lengths."""
    if isinstance(value, (tuple, list)):
        if len(value) != ndim:
            raise ValueError(
                f"Expected `{name}` to have one value per spatial axis ({ndim}). "
                f"Received: {name}={tuple(value)!r}"
            )
        return tuple(int(v) for v in value)
    return (int(value),) * ndim


def patch_starts(size, patch, stride):
    """Start offsets of patches of length ``patch`` along an axis of length ``size``.

    ``0, stride, 2·stride, …`` while the patch fits; if the last patch stops short of the
    end, one more patch aligned to the end is added, so every position is covered.

    Raises:
        ValueError: if ``patch > size`` or ``stride < 1``.
    """
    if patch > size:
        raise ValueError(
            f"Expected `patch` <= the input's spatial size {size}. Received: patch={patch}"
        )
    if stride < 1:
        raise ValueError(f"Expected `stride` >= 1. Received: stride={stride}")
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] + patch < size:
        starts.append(size - patch)
    return starts


def patch_grid(spatial_shape, patch, stride):
    """All patch start corners, ``(n, ndim)`` int array, row-major over the axes."""
    axes = [patch_starts(n, p, s) for n, p, s in zip(spatial_shape, patch, stride)]
    return np.array(list(itertools.product(*axes)), dtype=np.int64).reshape(-1, len(spatial_shape))


def patch_masks(spatial_shape, starts, patch):
    """Boolean masks ``(n, *spatial_shape)``: ``True`` inside each patch."""
    masks = np.zeros((len(starts),) + tuple(spatial_shape), dtype=bool)
    for i, corner in enumerate(starts):
        masks[(i,) + tuple(slice(c, c + p) for c, p in zip(corner, patch))] = True
    return masks
