"""Reducers over the decoy axis (pure functions; streaming forms for chunked use)."""

import numpy as np
from keras import ops

from keras_dance._tensor import take
from keras_dance._validation import is_choice

AGGREGATIONS = ("range", "patch_range", "mean")


def range_aggregate(maps, axis=0):
    """DANCE Eq. 3: ``Z_i = max_j E_j,i − min_j E_j,i`` over the decoy axis (≥ 0)."""
    return ops.max(maps, axis=axis) - ops.min(maps, axis=axis)


def mean_aggregate(maps, axis=0):
    """The paper's "mean" ablation: ``Z_i = (1/D) Σ_j E_j,i``."""
    return ops.mean(maps, axis=axis)


def patch_range_aggregate(maps, patch_masks, decoys_per_patch=2):
    """The per-patch reading of DANCE Theorem 1 (``aggregation="patch_range"``).

    For every feature ``i``: the range of ``E_j,i`` over the decoys ``j`` of one patch
    that covers ``i`` (the decoys that perturbed ``i``'s own patch), averaged over the
    patches covering ``i``. With tiling patches each feature has one covering patch, and
    the map is ``|E_up,i − E_down,i|`` of its own patch.

    Args:
        maps: ``(D, …)`` decoy maps, decoy ``j`` belonging to patch ``j // decoys_per_patch``.
        patch_masks: ``(P, …)`` booleans broadcastable to one map: ``True`` where the
            patch covers the feature.
        decoys_per_patch: decoys per patch (2 for "optimized" decoys). Defaults to 2.

    Returns:
        The ``(…)`` map (≥ 0).
    """
    maps = ops.convert_to_tensor(maps)
    ranges = _patch_ranges(maps, decoys_per_patch)  # (P, …)
    cover = ops.cast(ops.convert_to_tensor(patch_masks), maps.dtype)
    return ops.sum(ranges * cover, 0) / ops.sum(cover + ops.zeros_like(ranges), 0)


def _patch_ranges(maps, unit):
    """``(P·unit, …) → (P, …)``: max − min over each patch's ``unit`` consecutive decoys."""
    per_patch = ops.reshape(maps, (-1, unit) + tuple(ops.shape(maps)[1:]))
    return ops.max(per_patch, 1) - ops.min(per_patch, 1)


class Reducer:
    """Streaming form for chunks of decoy maps: ``partial`` per chunk, ``merge``, ``result``.

    Range keeps ``(max, min)``, mean keeps the sum; both merge associatively, so chunking
    over decoys does not change the result beyond float summation order (mean).
    ``"patch_range"`` keeps the sum of per-patch ranges over covering patches and divides
    by the covering count, built once from the geometry; it needs ``bind(engine)`` and
    chunks that hold a patch's decoys together (``unit`` decoys: the engine's decoys per
    patch).
    """

    def __init__(self, aggregation):
        if not is_choice(aggregation, AGGREGATIONS):
            raise ValueError(
                f"Expected `aggregation` to be one of {list(AGGREGATIONS)}. "
                f"Received: aggregation={aggregation!r}"
            )
        self.aggregation = aggregation
        self.unit = 1
        self._geometry = None

    def bind(self, engine):
        """Reads the patch geometry of a ``DecoyEngine`` (needed by "patch_range")."""
        if self.aggregation != "patch_range":
            return self
        if engine.config.kind != "optimized":
            raise ValueError(
                "Expected `decoys.kind='optimized'` with aggregation='patch_range': the "
                "per-patch range needs the two decoys of each patch, and 'constant' makes "
                f"one. Received: kind={engine.config.kind!r}"
            )
        self.unit = engine.num_decoys // engine.num_patches
        spatial = engine.spatial_shape
        # Per axis: (P, n_axis) membership of each patch; a patch's mask is their product.
        members = [(np.arange(n)[None, :] >= engine.starts[:, a:a + 1])
                   & (np.arange(n)[None, :] < engine.starts[:, a:a + 1] + engine.patch[a])
                   for a, n in enumerate(spatial)]
        self._geometry = [ops.convert_to_tensor(m, "float32") for m in members]
        self._has_channels = engine.has_channels
        # How many patches cover each position (built once; a constant of the geometry).
        from keras_dance._patches import patch_masks

        count = patch_masks(spatial, engine.starts, engine.patch).sum(0).astype(np.float32)
        self._count = ops.convert_to_tensor(count[..., None] if self._has_channels else count)
        return self

    def _cover(self, first_patch, count):
        """``(count, *spatial[, 1])`` float masks of patches ``first_patch …``."""
        axes = [take(m, first_patch, count) for m in self._geometry]
        cover = axes[0]
        for a, axis in enumerate(axes[1:], start=1):
            cover = cover[..., None] * ops.reshape(
                axis, [count] + [1] * a + [axis.shape[-1]])
        return cover[..., None] if self._has_channels else cover

    def init(self, like):
        if self.aggregation == "range":
            return (ops.full(ops.shape(like), -float("inf")), ops.full(ops.shape(like), float("inf")))
        return (ops.zeros_like(like),)

    def partial(self, maps, first=0):
        """The state of one chunk ``maps (k, b, …)``: decoys ``first … first + k − 1``."""
        if self.aggregation == "range":
            return (ops.max(maps, 0), ops.min(maps, 0))
        if self.aggregation == "patch_range":
            if self._geometry is None:
                raise RuntimeError("Reducer('patch_range') used before bind(engine)")
            count = maps.shape[0] // self.unit  # chunks hold whole patches (DecoyMaps)
            ranges = _patch_ranges(maps, self.unit)  # (P', b, …)
            cover = self._cover(first // self.unit, count)[:, None]  # (P', 1, …)
            return (ops.sum(ranges * cover, 0),)
        return (ops.sum(maps, 0),)

    def merge(self, state, other):
        if self.aggregation == "range":
            return (ops.maximum(state[0], other[0]), ops.minimum(state[1], other[1]))
        return (state[0] + other[0],)

    def result(self, state, count):
        if self.aggregation == "range":
            return state[0] - state[1]
        if self.aggregation == "patch_range":
            return state[0] / self._count  # every feature lies in at least one patch
        return state[0] / float(count)
