"""Where decoy patches lie, and on which crops their constraint can be evaluated.

``PatchGeometry`` tiles one input's spatial axes with patches (docs/papers.md §1);
``plan_crops`` decides whether ``F_l`` may be evaluated on receptive-field crops around
each patch (``keras_dance.decoys.receptive_field``) and verifies it on a probe;
``window_indices`` addresses windows of a batch for gathers and scatters. Knows nothing
of the optimiser.
"""

import numpy as np
from keras import ops

from keras_dance import _patches
from keras_dance.decoys import receptive_field as rf

# Relative tolerance of the crop-exactness probe: float32 convolutions of different
# sizes may pick different algorithms (Winograd tiles, oneDNN blocking).
PROBE_RTOL = 1e-5


class PatchGeometry:
    """The patches tiling one input.

    Args:
        input_shape: the explainer's input shape (without the batch axis); the last axis
            holds channels when the rank is at least 2, else every feature is a position.
        patch: patch side (an int or one per spatial axis); None: ``_patches.auto_patch``.
        stride: patch stride; None: the patch (tiling patches).

    Attributes:
        spatial_shape: the position axes; ``has_channels``: whether a channel axis follows.
        patch, stride: one int per spatial axis.
        starts: ``(num_patches, ndim)`` start corners, row-major.
        patch_features: values in one patch (positions × channels).

    Raises:
        ValueError: a patch larger than the input.
    """

    def __init__(self, input_shape, patch=None, stride=None):
        self.input_shape = tuple(input_shape)
        self.has_channels = len(self.input_shape) >= 2
        self.spatial_shape = self.input_shape[:-1] if self.has_channels else self.input_shape
        ndim = len(self.spatial_shape)
        chosen = _patches.auto_patch(self.spatial_shape) if patch is None else patch
        self.patch = _patches.per_axis(chosen, ndim, "patch")
        self.stride = _patches.per_axis(stride if stride is not None else self.patch, ndim,
                                        "stride")
        for size, p in zip(self.spatial_shape, self.patch):
            if p > size:
                raise ValueError(
                    f"Expected `patch` <= the input's spatial shape {self.spatial_shape}. "
                    f"Received: patch={patch!r}"
                )
        self.starts = _patches.patch_grid(self.spatial_shape, self.patch, self.stride)
        self.num_patches = len(self.starts)
        channels = self.input_shape[-1] if self.has_channels else 1
        self.patch_features = int(np.prod(self.patch)) * channels

    def to_model(self, z):
        """``(…, *spatial, 1)`` → the model's layout (feature vectors lose the axis)."""
        return z if self.has_channels else z[..., 0]

    def from_model(self, x):
        """The model's layout → ``(…, *spatial, C)``, a channel axis always."""
        return x if self.has_channels else ops.expand_dims(x, -1)


def window_indices(rows, starts, lengths):
    """``(K, *lengths, 1 + ndim)`` indices ``[rows[k], starts[k] + offset]`` of K windows.

    Args:
        rows: ``(K,)`` batch rows; starts: ``(K, ndim)`` window corners; lengths: the
            window's side per axis (Python ints).
    """
    count = ops.shape(starts)[0]
    ndim = len(lengths)
    grids = [rows]
    for axis, length in enumerate(lengths):
        grids.append(starts[:, axis:axis + 1] + ops.arange(length, dtype="int32")[None])
    parts = []
    for axis, grid in enumerate(grids):
        shape = [-1] + [1] * ndim
        if axis:
            shape[axis] = lengths[axis - 1]
        part = ops.reshape(grid, shape)
        parts.append(ops.broadcast_to(part, (count,) + tuple(lengths)))
    return ops.stack(parts, axis=-1)


def plan_crops(sub_model, geometry, config, bounds):
    """``(CropPlan or None, reason in words)``: whether the constraint of every patch may
    be evaluated on a receptive-field crop, verified exact on a probe input."""
    if config.crop is False:
        return None, "cropping disabled (crop=False): constraint on the full input"
    if not geometry.has_channels:
        return None, "feature-vector input: constraint on the full input"
    if sub_model.graph is None:
        return None, ("layer given as a callable (no graph to analyse): constraint on "
                      "the full input")
    geometries, why = rf.graph_geometry(sub_model.graph, geometry.spatial_shape)
    if geometries is None:
        return None, f"{why}: constraint on the full input"
    plan = rf.plan_crops(geometries, geometry.starts, geometry.patch)
    if plan is None:
        return None, "crops would not be smaller than the input: constraint on the full input"
    mismatch = verify_crops(sub_model, geometry, plan, bounds)
    if mismatch is not None:
        return None, f"crop check failed ({mismatch}): constraint on the full input"
    return plan, (f"constraint on {plan.crop_shape} crops of the {geometry.spatial_shape} "
                  f"input ({plan.fraction:.1%} of the area), verified exact on a probe")


def verify_crops(sub_model, geometry, plan, bounds):
    """Cropped evaluation equals the full sub-model on a probe, for every patch (48 of
    them and the two ends beyond 64); None, or what differs in words."""
    lo, hi = bounds
    shape = geometry.input_shape
    rng = np.random.default_rng(12345)
    x = rng.uniform(lo, hi, size=(1,) + shape).astype(np.float32)
    base = ops.convert_to_numpy(sub_model(x, training=False))[0]
    scale = max(float(np.abs(base).max()), 1e-6)
    patches = range(geometry.num_patches)
    if geometry.num_patches > 64:
        picks = rng.choice(geometry.num_patches, 48, replace=False).tolist()
        patches = sorted(set(picks) | {0, geometry.num_patches - 1})
    masks = _patches.patch_masks(geometry.spatial_shape, geometry.starts[list(patches)],
                                 geometry.patch)[..., None]
    perturbed = np.where(masks > 0, rng.uniform(lo, hi, masks.shape[:1] + shape),
                         x).astype(np.float32)
    full = ops.convert_to_numpy(sub_model(perturbed, training=False))
    for row, i in enumerate(patches):
        window = tuple(slice(o, o + n) for o, n in zip(plan.offsets[i], plan.crop_shape))
        cropped = ops.convert_to_numpy(sub_model(perturbed[(row,) + window][None]))[0]
        index = np.argwhere(plan.footprints[i])
        full_index = index + plan.output_offsets[i]
        got = cropped[tuple(index.T)]
        want = full[row][tuple(full_index.T)]
        error = float(np.abs(got - want).max()) if len(index) else 0.0
        if error > PROBE_RTOL * scale:
            return f"patch {i}: max difference {error:.2e} at scale {scale:.2e}"
        outside = np.ones(full.shape[1:-1], bool)
        outside[tuple(full_index.T)] = False
        change = float(np.abs(full[row] - base)[outside].max()) if outside.any() else 0.0
        if change > PROBE_RTOL * scale:
            return f"patch {i}: layer changes outside its footprint by {change:.2e}"
    return None
