"""Integrated Gradients (Sundararajan et al. 2017)."""

import numpy as np
from keras import ops

from keras_dance import _validation
from keras_dance._chunking import chunked_sum
from keras_dance._tensor import as_rows, fold, split_budget, take
from keras_dance.methods.base import SaliencyMethod, score_gradients


class IntegratedGradients(SaliencyMethod):
    """Integrated Gradients along the straight path from a baseline.

    ``IG_i(x) = (x_i − x'_i) · ∫_0^1 ∂F^c(x' + α (x − x')) / ∂x_i dα``, the integral
    taken with the trapezoidal rule on ``steps`` equally spaced points α_j = j/(steps−1),
    weights ``w = (½, 1, …, 1, ½) / (steps − 1)``. Completeness: ``Σ_i IG_i(x) ≈
    F^c(x) − F^c(x')``, the error shrinking with ``steps``.

    The integration points are evaluated in chunks bounded by the explainer's
    ``batch_size``, so ``steps`` may be large without growing memory.

    Args:
        steps: number of gradient evaluations on the path (>= 2). Defaults to 50.
        baseline: a float (filled baseline) or an array broadcastable to one input, or
            "reference" for token models: each text's own ids with every token but the
            special ones (``[CLS]``, ``[SEP]``, BOS …, from a keras_hub preprocessor's
            tokenizer) replaced by the padding token, embedded — transformers-interpret's
            baseline, which keeps the positions the model always sees; 0.0 is the zero
            embedding. Defaults to 0.0.

    Example:
        >>> import keras_dance as kd
        >>> method = kd.methods.IntegratedGradients(steps=64, baseline=0.0)
    """

    name = "integrated_gradients"

    def __init__(self, steps=50, baseline=0.0):
        # At most 2**20 points: the weights are a constant of that size.
        steps = _validation.check_positive_int(steps, "steps", minimum=2, maximum=2**20)
        if isinstance(baseline, str) and baseline == "reference":
            baseline, reference = 0.0, True
        else:
            reference = False
        self.reference = reference
        try:
            baseline_array = np.asarray(baseline, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"Expected `baseline` to be a number or an array. Received: baseline={baseline!r}"
            ) from error
        if not np.all(np.isfinite(baseline_array)):
            raise ValueError(
                f"Expected a finite `baseline`. Received: baseline={baseline!r}"
            )
        self.steps = int(steps)
        self.baseline = baseline
        self._baseline = baseline_array
        alphas = np.linspace(0.0, 1.0, self.steps, dtype=np.float64)
        weights = np.full(self.steps, 1.0 / (self.steps - 1))
        weights[[0, -1]] *= 0.5
        self._alphas = alphas.astype(np.float32)
        self._weights = weights.astype(np.float32)

    @property
    def is_complete(self):
        return True

    def check(self, forward):
        if self.reference and not callable(getattr(forward, "reference", None)):
            raise ValueError(
                "Expected a token model for baseline='reference' (special tokens kept, the "
                "others padded). Received: a model without token ids")
        if self.reference:
            forward.reference(None)  # raises for a model that is not a token model
        shape = getattr(forward, "input_shape", None)
        if shape is None:
            return
        baseline = self._baseline.shape
        if len(baseline) > len(shape) or any(
                b not in (1, n) for b, n in zip(baseline[::-1], shape[::-1]) if n is not None):
            raise ValueError(
                "Expected `baseline` to be a number or an array broadcastable to one input "
                f"{tuple(shape)}. Received: baseline of shape {baseline}")

    def rows_per_input(self, num_classes):
        del num_classes
        return self.steps

    def __call__(self, x, forward, targets, budget=None):
        if self.reference:
            baseline = forward.reference(x)
        else:
            baseline = ops.broadcast_to(ops.convert_to_tensor(self._baseline), ops.shape(x))
        delta = x - baseline
        alphas = ops.convert_to_tensor(self._alphas)
        weights = ops.convert_to_tensor(self._weights)
        broadcast = (-1,) + (1,) * len(x.shape)

        def chunk(start, size):
            a = ops.reshape(take(alphas, start, size), broadcast)
            w = ops.reshape(take(weights, start, size), broadcast)
            points = ops.expand_dims(baseline, 0) + a * ops.expand_dims(delta, 0)  # (size, B, *f)
            grads = fold(score_gradients(as_rows(points, x), forward, targets.tile(size)), size)
            return ops.sum(w * grads, axis=0)

        size = split_budget(budget, 1) or self.steps
        return delta * chunked_sum(chunk, self.steps, size, ops.zeros_like(x))

    def get_config(self):
        baseline = "reference" if self.reference else self.baseline
        if isinstance(baseline, np.ndarray):
            baseline = baseline.tolist()
        return {"steps": self.steps, "baseline": baseline}
