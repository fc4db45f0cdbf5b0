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


#: ``patch=None`` picks the smallest patch side (≥ 3) that tiles the input with at most
#: this many patches: 3 up to 48×48 inputs (the digits defaults), 14 at 224×224 (256
#: patches, 512 decoys). Measured in benchmarks/bench_real_models.py (docs/real_models.md).
MAX_AUTO_PATCHES = 256


def auto_patch(spatial_shape, max_patches=MAX_AUTO_PATCHES):
    """The default patch side: the smallest ``p ≥ 3`` with ``Π ceil(n_i / p) ≤ max_patches``
    (capped at the smallest axis)."""
    side = 3
    while side < min(spatial_shape) and np.prod(
            [-(-n // side) for n in spatial_shape]) > max_patches:
        side += 1
    return min(side, min(spatial_shape))


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
