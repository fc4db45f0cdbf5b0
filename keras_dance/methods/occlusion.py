"""Occlusion (Zeiler & Fergus 2014): a black-box map from patches replaced by a baseline."""

import numpy as np
from keras import ops

from keras_dance._chunking import chunked_sum
from keras_dance import _patches
from keras_dance._tensor import as_map, as_rows, split_budget, take, with_channels
from keras_dance.methods.base import SaliencyMethod


def _check_number(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
            np.isfinite(value)):
        raise ValueError(f"Expected `{name}` to be a finite number. Received: "
                         f"{name}={value!r}")
    return float(value)


class Occlusion(SaliencyMethod):
    """The score's drop when a patch of positions (all channels) is set to ``baseline``,
    averaged over the patches that cover each position.

    ``E(x)_p = mean over patches P ∋ p of [S(x) − S(x with P set to baseline)]``. Patches
    slide with ``stride`` and the last one is aligned to the border (as DANCE's), so every
    position is covered. Needs only ``model(x)``: no gradient. The occluded inputs are
    evaluated in chunks under the memory knob.

    Args:
        patch: patch side (an int, or one per position axis). Defaults to 4.
        stride: patch stride; None: the patch (no overlap). Defaults to None.
        baseline: the value occluded features take. Defaults to 0.0.

    Example:
        >>> method = kd.methods.Occlusion(patch=4, stride=2)
    """

    name = "occlusion"
    needs_gradients = False

    def __init__(self, patch=4, stride=None, baseline=0.0):
        for name, value in (("patch", patch), ("stride", stride)):
            values = value if isinstance(value, (tuple, list)) else (value,)
            if value is None and name == "stride":
                continue
            if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1
                   for v in values):
                raise ValueError(f"Expected `{name}` to be a positive int or one per position "
                                 f"axis. Received: {name}={value!r}")
        self.patch = patch if not isinstance(patch, list) else tuple(patch)
        self.stride = stride if not isinstance(stride, list) else tuple(stride)
        self.baseline = _check_number(baseline, "baseline")

    def windows(self, positions):
        """Boolean masks ``(n, *positions)`` of the patches over ``positions``."""
        patch = _patches.per_axis(self.patch, len(positions), "patch")
        stride = _patches.per_axis(self.stride or self.patch, len(positions), "stride")
        return _patches.patch_masks(positions, _patches.patch_grid(positions, patch, stride),
                                     patch)

    def rows_per_input(self, num_classes):
        del num_classes
        return 64  # patches per input depend on its size; a nominal share of the knob

    def __call__(self, x, forward, targets, budget=None):
        inputs, x = x, with_channels(x)
        positions = tuple(x.shape[1:-1])
        windows = self.windows(positions)
        count = len(windows)
        masks = ops.convert_to_tensor(windows.astype(np.float32))  # (n, *positions)
        coverage = ops.convert_to_tensor(windows.sum(axis=0).astype(np.float32))
        reference = targets.score(forward(inputs))  # (B,)

        def chunk(start, size):
            window = take(masks, start, size)  # (s, *p)
            occluded = ops.expand_dims(ops.expand_dims(window, 1), -1)  # (s, 1, *p, 1)
            rows = ops.expand_dims(x, 0) * (1.0 - occluded) + self.baseline * occluded
            rows = as_rows(rows, inputs)
            scores = ops.reshape(targets.tile(size).score(forward(rows)), (size, -1))
            drops = ops.expand_dims(reference, 0) - scores  # (s, B)
            return ops.einsum("sb,s...->b...", drops, window)

        total = chunked_sum(chunk, count, split_budget(budget, 1) or count,
                            ops.zeros((ops.shape(x)[0],) + positions))
        return as_map(total / coverage, inputs)

    def get_config(self):
        return {"patch": self.patch, "stride": self.stride, "baseline": self.baseline}
