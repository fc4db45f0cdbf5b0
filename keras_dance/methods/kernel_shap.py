"""KernelSHAP (Lundberg & Lee 2017) on patch features."""

import numpy as np
from keras import ops

from keras_dance import _random as random
from keras_dance import _validation
from keras_dance._chunking import chunked_sum
from keras_dance import _patches
from keras_dance._tensor import as_map, as_rows, split_budget, with_channels
from keras_dance.methods.base import SaliencyMethod
from keras_dance.methods.occlusion import Occlusion, _check_number


class KernelSHAP(SaliencyMethod):
    """Shapley values of patch features, estimated by Kernel SHAP's weighted regression.

    The features are the tiles of a ``patch``-sided grid over the positions (all
    channels; the last tile of an axis is smaller when the patch does not divide it); a
    feature that is "off" takes ``baseline``. Coalitions are drawn with the Shapley kernel as their distribution
    (a coalition size ``k`` with probability ∝ (M − 1) / (k (M − k)), then ``k``
    features uniformly), so the regression is unweighted; the efficiency constraint
    ``Σ φ = S(x) − S(baseline)`` is imposed exactly (the last feature is eliminated), and
    a tiny ridge keeps the normal equations solvable. Coalitions come from ``seed`` and
    their index only, shared by every input of a call. Each position of a feature gets
    ``φ_j / (positions in the feature)``, so the map sums to ``S(x) − S(baseline)`` —
    the score on the logits, like the gradient methods. Needs only ``model(x)``; the
    coalitions are evaluated in chunks under the memory knob.

    Args:
        patch: feature (patch) side. Defaults to 4.
        num_samples: coalitions drawn (more than the number of features). Defaults to 1000.
        baseline: the value "off" features take. Defaults to 0.0.
        seed: integer seed. Defaults to 0.

    Example:
        >>> method = kd.methods.KernelSHAP(patch=8, num_samples=2000)
    """

    name = "kernel_shap"
    needs_gradients = False
    ridge = 1e-6

    def __init__(self, patch=4, num_samples=1000, baseline=0.0, seed=0):
        self.patch = Occlusion(patch=patch).patch  # the same checks
        self.num_samples = _validation.check_positive_int(num_samples, "num_samples",
                                                          minimum=2, maximum=2**24)
        self.baseline = _check_number(baseline, "baseline")
        seed = _validation.check_seed(seed)
        self.seed = int(seed)

    def rows_per_input(self, num_classes):
        del num_classes
        return self.num_samples

    def _check_features(self, positions, features):
        if features < 2:
            raise ValueError(f"Expected at least two patch features for KernelSHAP. Received: "
                             f"patch={self.patch} over positions {positions}")
        if self.num_samples <= features:
            raise ValueError(f"Expected `num_samples` above the number of features "
                             f"({features}). Received: num_samples={self.num_samples}")
        return features

    def check(self, forward):
        """The features' count is known from the input shape: refused when the explainer
        is built, not inside the compiled function (where TensorFlow would wrap the
        message in its tracing frames)."""
        shape = getattr(forward, "input_shape", None)
        if shape is None or any(n is None for n in shape):
            return
        positions = tuple(shape[:-1]) if len(shape) > 1 else tuple(shape)
        self._check_features(positions, len(self.features(positions)))

    def features(self, positions):
        """The tiles as float32 masks ``(M, *positions)``: a partition of the positions."""
        patch = _patches.per_axis(self.patch, len(positions), "patch")
        tiles = [np.arange(n) // p for n, p in zip(positions, patch)]
        label = np.zeros(positions, np.int64)
        for axis, (index, n_tiles) in enumerate(zip(tiles, [t[-1] + 1 for t in tiles])):
            shape = [1] * len(positions)
            shape[axis] = -1
            label = label * n_tiles + index.reshape(shape)
        return (label[None] == np.arange(label.max() + 1).reshape(
            (-1,) + (1,) * len(positions))).astype(np.float32)

    def coalitions(self, count_features, start, count):
        """Coalitions ``start .. start + count − 1``: float32 ``(count, M)`` of 0/1."""
        sizes = np.arange(1, count_features)
        kernel = (count_features - 1) / (sizes * (count_features - sizes))
        cumulative = ops.convert_to_tensor(np.cumsum(kernel / kernel.sum()), "float32")
        streams = start + ops.arange(count, dtype="int32")
        draw = random.uniform((1,), self.seed, streams)[:, 0]
        size = 1 + ops.cast(ops.searchsorted(cumulative, draw, side="right"), "int32")
        size = ops.minimum(size, count_features - 1)
        order = random.uniform((count_features,), self.seed + 0x51A9, streams)
        ranks = ops.argsort(ops.argsort(order, axis=1), axis=1)
        return ops.cast(ranks < size[:, None], "float32")

    def __call__(self, x, forward, targets, budget=None):
        inputs, x = x, with_channels(x)
        positions = tuple(x.shape[1:-1])
        windows = self.features(positions)  # (M, *p)
        features = self._check_features(positions, len(windows))
        windows = ops.convert_to_tensor(windows)
        full = targets.score(forward(inputs))  # (B,)
        empty = targets.score(forward(ops.full(ops.shape(inputs), self.baseline)))
        delta = full - empty

        def chunk(start, size):
            z = self.coalitions(features, start, size)  # (s, M)
            on = ops.einsum("sm,m...->s...", z, windows)  # (s, *p) in {0, 1}
            on = ops.expand_dims(ops.expand_dims(on, 1), -1)  # (s, 1, *p, 1)
            rows = ops.expand_dims(x, 0) * on + self.baseline * (1.0 - on)
            values = ops.reshape(targets.tile(size).score(forward(as_rows(rows, inputs))),
                                 (size, -1))
            # Efficiency eliminates φ_M: y' = v − v(∅) − z_M Δ, X' = z_{<M} − z_M.
            reduced = z[:, :-1] - z[:, -1:]
            target = values - empty[None] - z[:, -1:] * delta[None]
            return (ops.matmul(ops.transpose(reduced), reduced),
                    ops.matmul(ops.transpose(reduced), target))

        gram, moment = chunked_sum(
            chunk, self.num_samples, split_budget(budget, 1) or self.num_samples,
            (ops.zeros((features - 1, features - 1)),
             ops.zeros((features - 1, ops.shape(x)[0]))))
        gram += self.ridge * ops.eye(features - 1)
        head = ops.transpose(ops.solve(gram, moment))  # (B, M − 1)
        phi = ops.concatenate([head, (delta - ops.sum(head, axis=1))[:, None]], axis=1)
        area = ops.sum(windows, axis=tuple(range(1, len(windows.shape))))
        saliency = ops.einsum("bm,m...->b...", phi / area, windows)
        return as_map(saliency / float(x.shape[-1]), inputs)

    @property
    def is_complete(self):
        return True

    def get_config(self):
        return {"patch": self.patch, "num_samples": self.num_samples,
                "baseline": self.baseline, "seed": self.seed}
