"""SmoothGrad (Smilkov et al. 2017): a wrapper that averages any method under noise."""

import numpy as np
from keras import ops

from keras_dance import _random as random
from keras_dance import _validation
from keras_dance._chunking import chunked_sum
from keras_dance._tensor import as_rows, fold, split_budget
from keras_dance.methods.base import SaliencyMethod


class SmoothGrad(SaliencyMethod):
    """Averages a method's maps over Gaussian perturbations of the input.

    ``E_SG(x) = (1/N) Σ_j E(x + σ z_j)`` with ``z_j ~ N(0, I)`` and
    ``σ = noise_level · (hi − lo)``: ``(lo, hi) = value_range`` when given, otherwise each
    input's own ``(min, max)`` (the SmoothGrad paper's choice).

    Noise draw ``j`` is ``keras_dance._random.normal(seed, streams=[j])``, shared by every input of a
    call (common random numbers): a map depends only on its input and the seed, never on
    how the batch was split by ``batch_size``. Samples are evaluated in chunks bounded by
    the explainer's ``batch_size``.

    Args:
        method: the wrapped method (an instance or a registered name). Defaults to the
            vanilla gradient.
        num_samples: number of noisy samples N (>= 1). Defaults to 50.
        noise_level: σ as a fraction of the value span (> 0). Defaults to 0.15.
        value_range: ``(lo, hi)`` or ``None`` (per-input span). Defaults to None.
        seed: integer seed of the noise. Defaults to 0.

    Example:
        >>> import keras_dance as kd
        >>> sg_ig = kd.methods.SmoothGrad(kd.methods.IntegratedGradients(), num_samples=20)
    """

    name = "smoothgrad"
    #: The noise tunnel's reduction of the N maps: "mean" (SmoothGrad), "square" (the mean
    #: of squares, SquareGrad) or "variance" (VarGrad); one noise loop for all three.
    reduction = "mean"

    def __init__(self, method=None, num_samples=50, noise_level=0.15, value_range=None,
                 seed=0):
        from keras_dance.methods import get as get_method

        self.method = get_method("gradient" if method is None else method)
        num_samples = _validation.check_positive_int(num_samples, "num_samples", maximum=2**20)
        if (isinstance(noise_level, bool) or not isinstance(noise_level, (int, float, np.number))
                or not np.isfinite(noise_level) or noise_level <= 0):
            raise ValueError(
                "Expected `noise_level` to be a positive number. "
                f"Received: noise_level={noise_level!r}"
            )
        if value_range is not None:
            value_range = _validation.check_range(value_range, "value_range")
        seed = _validation.check_seed(seed)
        self.num_samples = int(num_samples)
        self.noise_level = float(noise_level)
        self.value_range = value_range
        self.seed = int(seed)

    @property
    def is_complete(self):
        return False

    @property
    def needs_class_indices(self):
        return self.method.needs_class_indices

    def rows_per_input(self, num_classes):
        return self.num_samples * self.method.rows_per_input(num_classes)

    def check(self, forward):
        self.method.check(forward)

    def __call__(self, x, forward, targets, budget=None):
        num_classes = getattr(forward, "num_classes", None)
        inner_rows = self.method.rows_per_input(num_classes)
        samples_per_pass = split_budget(budget, inner_rows) or self.num_samples
        samples_per_pass = min(samples_per_pass, self.num_samples)
        axes = list(range(1, len(x.shape)))
        if self.value_range is None:
            span = ops.max(x, axis=axes) - ops.min(x, axis=axes)
        else:
            span = ops.full((ops.shape(x)[0],), self.value_range[1] - self.value_range[0])
        sigma = ops.reshape(self.noise_level * span, (1, -1) + (1,) * len(axes))
        feature_shape = ops.shape(x)[1:]
        seed = self.seed

        def chunk(start, size):
            draws = random.normal(feature_shape, seed, start + ops.arange(size, dtype="int32"))
            noisy = ops.expand_dims(x, 0) + sigma * ops.expand_dims(draws, 1)  # (size, B, *f)
            maps = fold(self.method(as_rows(noisy, x), forward, targets.tile(size),
                                    split_budget(budget, size)), size)
            # Σ E and Σ E² over the chunk's samples (streamed: memory stays bounded).
            return ops.sum(maps, axis=0), ops.sum(ops.square(maps), axis=0)

        total, squares = chunked_sum(chunk, self.num_samples, samples_per_pass,
                                     (ops.zeros_like(x), ops.zeros_like(x)))
        mean, mean_square = total / float(self.num_samples), squares / float(self.num_samples)
        if self.reduction == "square":
            return mean_square
        if self.reduction == "variance":
            return ops.maximum(mean_square - ops.square(mean), 0.0)
        return mean

    def get_config(self):
        return {
            "method": {"name": self.method.name, "config": self.method.get_config()},
            "num_samples": self.num_samples,
            "noise_level": self.noise_level,
            "value_range": self.value_range,
            "seed": self.seed,
        }
