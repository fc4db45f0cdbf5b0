"""The decoy engine: the sub-model, the patches and their crops, and the optimiser, put
together to solve decoy problems in batches.

Knows nothing of classes or saliency: given inputs, it returns decoys and their
feasibility (docs/papers.md §1, Eq. 2). ``geometry`` says where the patches lie and on
which crops the constraint may be evaluated; ``optimiser`` solves the problems.
"""

import logging

import numpy as np
from keras import ops

from keras_dance import _random, backend
from keras_dance._tensor import expand
from keras_dance.decoys.config import DecoyConfig
from keras_dance.decoys.geometry import PatchGeometry, plan_crops, window_indices
from keras_dance.decoys.layer_function import LayerFunction
from keras_dance.decoys.optimiser import Problem, optimise

logger = logging.getLogger("keras_dance")


class DecoyEngine:
    """Solves every (input, patch, sign) decoy problem of a DecoyConfig, in batches.

    Args:
        model: the user's model (never changed).
        config: a ``DecoyConfig``.
        input_shape: the explainer's input shape (without the batch axis).
        prepare: the explainer's input adaptation (``ModelView.prepare``), or None.
        start: token models: the layers down to the embedding, where ``F_l`` starts.
        bounds: per-channel ``(lo, hi)`` arrays (token embeddings), or None for
            ``config.value_range``.

    Attributes:
        sub_model: ``F_l`` as a callable ``LayerFunction`` on the explainer's inputs; it
            runs the user's own layers (nothing is copied, changed or called symbolically).
        geometry: the ``PatchGeometry``; its ``spatial_shape``, ``has_channels``,
            ``patch``, ``stride``, ``starts``, ``num_patches`` and ``patch_features`` are
            the engine's attributes too.
        num_decoys: twice ``num_patches`` ("optimized") or equal to it ("constant").
        cropping: whether the constraint is evaluated on receptive-field crops (decided
            and verified at construction; see ``crop_plan`` and ``reason``).
        reason: why cropping is or is not used, in words.
    """

    #: Run the solver's element-wise work as XLA-fused kernels (measured faster on CPU in
    #: benchmarks/bench_decoys.py); class attribute so the benchmark can compare.
    fuse = True

    def __init__(self, model, config, input_shape, prepare=None, start=None, bounds=None):
        if not isinstance(config, DecoyConfig):
            raise TypeError(
                f"Expected `decoys` to be a kd.DecoyConfig or None. Received: decoys={config!r}"
            )
        self.config = config
        self.input_shape = tuple(input_shape)
        # The box: config.value_range, or per-channel (lo, hi) arrays (token embeddings).
        self.bounds = config.value_range if bounds is None else tuple(
            np.asarray(b, np.float32) for b in bounds)
        self.sub_model = LayerFunction(model, config.layer, prepare, start)
        self.layer_name = self.sub_model.name
        self.geometry = geometry = PatchGeometry(self.input_shape, config.patch, config.stride)
        self.spatial_shape, self.has_channels = geometry.spatial_shape, geometry.has_channels
        self.patch, self.stride, self.starts = geometry.patch, geometry.stride, geometry.starts
        self.num_patches, self.patch_features = geometry.num_patches, geometry.patch_features
        self.num_decoys = self.num_patches * (2 if config.kind == "optimized" else 1)
        self.crop_plan, self.reason = plan_crops(self.sub_model, geometry, config, self.bounds)
        self.cropping = self.crop_plan is not None
        if self.cropping:
            plan = self.crop_plan
            self._footprints = ops.convert_to_tensor(plan.footprints[..., None], "float32")
            self._offsets = ops.convert_to_tensor(plan.offsets, "int32")
            # Each crop's F_l(x) is a window of the full F_l(x) (the plan guarantees it).
            self._out_offsets = ops.convert_to_tensor(plan.output_offsets, "int32")
            self._patch_offsets = ops.convert_to_tensor(plan.patch_offsets, "int32")
        self._starts = ops.convert_to_tensor(self.starts, "int32")
        self._write_fused = backend.compile(_write_patches, jit_compile=True)  # built once
        logger.info("%s", self.describe())

    def describe(self):
        """The cost of this configuration, in words: decoys, crops and solver steps.

        Each decoy problem costs up to ``steps`` forward and backward passes of ``F_l`` on
        its crop, so one input costs about ``num_decoys × steps × crop_fraction``
        full-input ``F_l`` passes, plus the base method's map of every decoy.
        """
        fraction = self.crop_plan.fraction if self.cropping else 1.0
        steps = 0 if self.config.kind == "constant" else self.config.steps
        passes = self.num_decoys * steps * fraction
        return (f"decoys at layer {self.layer_name!r}: {self.num_patches} patches of "
                f"{self.patch} at stride {self.stride} on the {self.spatial_shape} input, "
                f"{self.num_decoys} decoys per input, up to {steps} solver steps each; "
                f"{self.reason}; at most {passes:,.0f} full-input F_l passes per input "
                f"(forward and backward) and {self.num_decoys} base-method maps")

    #: The scale of a relative ε: "max_abs" (max |F_l(x)|, the images' and the default)
    #: or "spread" (the larger of max |F_l(x)| and max F_l(x) − min F_l(x): token models,
    #: whose transformer layers end in a LayerNorm centred on 0; equal to max_abs for
    #: non-negative layers such as ReLUs). docs/decoys.md has the measurement.
    scale = "max_abs"

    def layer_scale(self, x, layer_x=None):
        """The scale of F_l(x) per input, ``(b,)`` (see ``scale``)."""
        f = self.sub_model(x, training=False) if layer_x is None else layer_x
        flat = ops.reshape(f, (ops.shape(f)[0], -1))
        largest = ops.max(ops.abs(flat), axis=1)
        if self.scale == "spread":
            largest = ops.maximum(largest, ops.max(flat, axis=1) - ops.min(flat, axis=1))
        return largest

    def epsilon(self, x, layer_x=None):
        """The tolerance ε per input, ``(b,)`` (``layer_x``: ``F_l(x)`` if already known)."""
        if self.config.relative_epsilon:
            return self.config.epsilon * self.layer_scale(x, layer_x)
        return ops.full((ops.shape(x)[0],), self.config.epsilon)

    def _pairs(self, x, pair_start, pairs):
        """``(pair indices (pairs,), patch index of each row (pairs · b,))``.

        Rows are ordered pair-major: row ``r`` is input ``r % b`` of pair ``r // b``.
        """
        pair = pair_start + ops.arange(pairs, dtype="int32")
        patch_index = pair // 2 if self.config.kind == "optimized" else pair
        return pair, ops.repeat(patch_index, ops.shape(x)[0])

    def solve(self, x, pair_start, pairs, layer_x=None, fuse=None):
        """Decoy patches for the pairs ``pair_start … pair_start + pairs − 1`` of every input.

        Pair ``j`` is patch ``j // 2`` with sign ``+1`` (even ``j``) or ``−1`` (odd) for
        "optimized" decoys, patch ``j`` for "constant" ones. ``pairs`` is a static int. A
        decoy differs from its input only inside its patch, so the solver returns the
        patch's values; ``decoy_images`` writes them into copies of the input.

        Args:
            x: float32 ``(b, *input_shape)``, inside ``value_range``.
            pair_start: int32 scalar.
            pairs: Python int.
            layer_x: ``F_l(x)``, when the caller solves several chunks of one batch and
                computed it once. Defaults to None (computed here).
            fuse: run the element-wise work as XLA-fused kernels; None: the engine's
                ``fuse``. False gives plain kernels (an exported graph). Defaults to None.

        Returns:
            ``(values (pairs, b, *patch, C), found (pairs, b) bool,
            perturbation (pairs, b))`` — ``C`` is 1 for feature vectors; ``found``: some
            iterate was feasible (else the values are ``x``'s); ``perturbation``: mean
            |x̃ − x| over the patch's features.
        """
        config = self.config
        geometry = self.geometry
        batch = ops.shape(x)[0]
        pair, rows_patch = self._pairs(x, pair_start, pairs)
        x_model = geometry.from_model(x)  # (b, *spatial, C)
        rows_input = ops.tile(ops.arange(batch, dtype="int32"), [pairs])
        starts = ops.take(self._starts, rows_patch, axis=0)

        def finish(values, found, original):
            change = ops.sum(ops.abs(values - original), axis=tuple(range(1, len(values.shape))))
            return (ops.reshape(values, (pairs, batch) + tuple(ops.shape(values)[1:])),
                    ops.reshape(found, (pairs, batch)),
                    ops.reshape(change / self.patch_features, (pairs, batch)))

        if config.kind == "constant":  # the patch takes the input's mean, per channel
            original = backend.gather_nd(x_model, window_indices(rows_input, starts,
                                                                 self.patch))
            mean = ops.mean(x_model, axis=tuple(range(1, len(x_model.shape) - 1)),
                            keepdims=True)
            values = ops.take(mean, rows_input, axis=0) + ops.zeros_like(original)
            return finish(values, ops.ones((pairs * batch,), "bool"), original)
        sign = ops.repeat(1.0 - 2.0 * ops.cast(pair % 2, "float32"), batch)
        if layer_x is None:
            layer_x = self.sub_model(x, training=False)
        epsilon = ops.tile(self.epsilon(x, layer_x), [pairs])

        if self.cropping:
            # The solver sees only each problem's crop, gathered straight from x.
            plan = self.crop_plan
            base = backend.gather_nd(x_model, window_indices(
                rows_input, ops.take(self._offsets, rows_patch, axis=0), plan.crop_shape))
            window = ops.take(self._patch_offsets, rows_patch, axis=0)
            features = self.sub_model
            reference = backend.gather_nd(layer_x, window_indices(
                rows_input, ops.take(self._out_offsets, rows_patch, axis=0),
                plan.output_shape))
            footprint = ops.take(self._footprints, rows_patch, axis=0)
        else:
            base, window, footprint = expand(x_model, pairs), starts, None
            reference = expand(layer_x, pairs)

            def features(z):
                return self.sub_model(geometry.to_model(z), training=False)

        index = window_indices(ops.arange(pairs * batch, dtype="int32"), window, self.patch)
        original = backend.gather_nd(base, index)
        # Random start one step into the patch (common to every input of a pair).
        draws = _random.uniform(tuple(original.shape[1:]), config.seed, pair)
        problem = Problem(base=base, index=index, start=original, sign=sign, epsilon=epsilon,
                          reference=reference, footprint=footprint, features=features)
        values, found, _ = optimise(problem, config, self.bounds, self.patch_features,
                                    ops.repeat(draws, batch, axis=0),
                                    fuse=self.fuse if fuse is None else fuse)
        return finish(values, found, original)

    def decoy_images(self, x, pair_start, values, fuse=None):
        """The decoys of ``solve``: copies of ``x`` with each patch replaced by its values.

        Args:
            x: ``(b, *input_shape)``, the inputs given to ``solve``.
            pair_start: int32 scalar, the first pair of ``values``.
            values: ``(pairs, b, *patch, C)``, from ``solve`` (or a slice of it along the
                first axis, with ``pair_start`` moved accordingly).

        Returns:
            ``(pairs, b, *input_shape)``. With ``fuse`` (the default), one XLA kernel writes
            the copies and the patches in one pass.
        """
        pairs = values.shape[0]
        _, rows_patch = self._pairs(x, pair_start, pairs)
        rows = ops.reshape(values, (-1,) + tuple(ops.shape(values)[2:]))
        index = window_indices(ops.arange(ops.shape(rows)[0], dtype="int32"),
                               ops.take(self._starts, rows_patch, axis=0), self.patch)
        write = self._write_fused if (self.fuse if fuse is None else fuse) else _write_patches
        decoys = self.geometry.to_model(write(self.geometry.from_model(x), index, rows))
        return ops.reshape(decoys, (pairs, ops.shape(x)[0]) + self.input_shape)


def _write_patches(x, index, values):
    """Row ``r = p · b + i`` is ``x[i]`` with ``values[r]`` written at ``index[r]``."""
    return backend.scatter_nd_update(expand(x, ops.shape(values)[0] // ops.shape(x)[0]), index,
                                     values)
