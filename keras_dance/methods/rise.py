"""RISE (Petsiuk et al. 2018): randomised input sampling for explanation."""

import math

import numpy as np
from keras import ops

from keras_dance import _random as random
from keras_dance import _validation, backend
from keras_dance._chunking import chunked_sum
from keras_dance._tensor import as_map, as_rows, probabilities, split_budget, with_channels
from keras_dance.methods.base import SaliencyMethod


class RISE(SaliencyMethod):
    """``E(x) = 1 / (N·p) · Σ_i P_c(x ⊙ M_i) · M_i``: the target's probability under
    random soft masks, weighted by the masks.

    Mask ``i``: a ``cells × cells`` grid (``cells`` along a sequence) of Bernoulli(p)
    values, upsampled bilinearly to ``(cells + 1)`` cell sizes and cropped at a random
    shift of less than one cell (the paper's recipe). Masks come from ``seed`` and their
    index only (counter-based), so a map depends on its input and the seed, not on the
    batch or the memory knob; masks are shared by every input of a call. Needs only
    ``model(x)``; the masked inputs are evaluated in chunks under the memory knob.

    Args:
        num_masks: N (>= 1). Defaults to 2000.
        cells: grid cells per position axis (>= 2). Defaults to 7.
        probability: p, the chance a cell is kept (0 < p <= 1). Defaults to 0.5.
        seed: integer seed. Defaults to 0.

    Example:
        >>> method = kd.methods.RISE(num_masks=1000, cells=8, seed=1)
    """

    name = "rise"
    needs_gradients = False

    def __init__(self, num_masks=2000, cells=7, probability=0.5, seed=0):
        self.num_masks = _validation.check_positive_int(num_masks, "num_masks", maximum=2**24)
        self.cells = _validation.check_positive_int(cells, "cells", minimum=2, maximum=4096)
        if (isinstance(probability, bool) or not isinstance(probability, (int, float, np.number))
                or not 0 < probability <= 1):
            raise ValueError(f"Expected `probability` in (0, 1]. Received: "
                             f"probability={probability!r}")
        seed = _validation.check_seed(seed)
        self.probability = float(probability)
        self.seed = int(seed)

    def rows_per_input(self, num_classes):
        del num_classes
        return self.num_masks

    def masks(self, positions, start, count):
        """Masks ``start .. start + count − 1`` for inputs with ``positions``: float32
        ``(count, *positions)`` in [0, 1]."""
        positions = tuple(positions)
        shape = positions + (1,) if len(positions) == 1 else positions
        if len(shape) != 2:
            raise ValueError(f"Expected inputs with one or two position axes for RISE. "
                             f"Received: positions {positions}")
        grid = (self.cells, self.cells if len(positions) == 2 else 1)
        cell = [math.ceil(n / g) for n, g in zip(shape, grid)]
        streams = start + ops.arange(count, dtype="int32")
        kept = ops.cast(random.uniform(grid, self.seed, streams) < self.probability, "float32")
        size = [(g + 1) * c for g, c in zip(grid, cell)]
        large = ops.image.resize(ops.expand_dims(kept, -1), size, interpolation="bilinear")
        large = large[..., 0]  # (count, *size)
        shift = ops.cast(random.uniform((2,), self.seed + 0x5EED, streams)
                         * ops.convert_to_tensor(cell, "float32"), "int32")  # (count, 2), < a cell
        rows = shift[:, :1] + ops.arange(shape[0], dtype="int32")[None]  # (count, H)
        cols = shift[:, 1:] + ops.arange(shape[1], dtype="int32")[None]  # (count, W)
        cropped = backend.batched_take(backend.batched_take(large, rows, axis=1), cols, axis=2)
        return ops.reshape(cropped, (-1,) + positions)

    def __call__(self, x, forward, targets, budget=None):
        inputs, x = x, with_channels(x)
        positions = tuple(x.shape[1:-1])
        num_classes = getattr(forward, "num_classes", None)

        def chunk(start, size):
            masks = self.masks(positions, start, size)  # (s, *p)
            rows = ops.expand_dims(x, 0) * ops.expand_dims(ops.expand_dims(masks, 1), -1)
            rows = as_rows(rows, inputs)
            scores = targets.tile(size).score(probabilities(forward(rows), num_classes))
            return ops.einsum("sb,s...->b...", ops.reshape(scores, (size, -1)), masks)

        total = chunked_sum(chunk, self.num_masks, split_budget(budget, 1) or self.num_masks,
                            ops.zeros((ops.shape(x)[0],) + positions))
        return as_map(total / (self.num_masks * self.probability), inputs)

    def get_config(self):
        return {"num_masks": self.num_masks, "cells": self.cells,
                "probability": self.probability, "seed": self.seed}
