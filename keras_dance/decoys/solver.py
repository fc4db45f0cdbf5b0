"""The decoy engine: builds the sub-model, plans crops, and solves decoy problems in batches.

Knows nothing of classes or saliency: given inputs, it returns decoys and their
feasibility (docs/papers.md §1, Eq. 2; the solver is our reconstruction, see DecoyConfig).
"""

import logging

import keras
import numpy as np
import tensorflow as tf

from keras_dance import _graph, _random
from keras_dance._tensor import expand
from keras_dance import _patches as masks_lib
from keras_dance.decoys import receptive_field as rf
from keras_dance.decoys.config import DecoyConfig

logger = logging.getLogger("keras_dance")

# Relative tolerance of the crop-exactness probe: float32 convolutions of different
# sizes may pick different algorithms (Winograd tiles, oneDNN blocking).
_PROBE_RTOL = 1e-5


class LayerFunction:
    """``x -> F_l(x)`` on the explainer's inputs: ``prepare`` (the explainer's input
    adaptation, ``InputAdapter.prepare``), then the layers.

    Attributes:
        graph: the ``kd._graph.GraphFunction`` when the layer is part of a functional
            graph (cropping can analyse it), else None (a user callable).
        name: the layer's path (``"outer/inner"``) or the callable's name.
    """

    def __init__(self, model, layer, prepare=None, start=None):
        self.prepare = prepare
        if callable(layer) and not isinstance(layer, keras.layers.Layer):
            self.graph, self._fn = None, layer
            self.name = getattr(layer, "__name__", type(layer).__name__)
            return
        if _graph.graph_io(model) is None:
            raise ValueError(
                "Expected `DecoyConfig.layer` to be a callable `x -> F_l(x)` for a model "
                "without a functional graph (a subclassed keras.Model): DANCE needs an "
                "intermediate layer's output, which such a model does not expose. Build the "
                "model with the functional API, or pass e.g. "
                "`layer=lambda x: model.features(x)` (it runs without receptive-field "
                f"cropping). Received: layer={layer!r} for model of type "
                f"{type(model).__name__}"
            )
        # start: the layers down to the one whose output is the explainer's input space
        # (an Embedding for token models); F_l is computed from there.
        self.graph = _graph.GraphFunction(model, _graph.resolve(model, layer), start)
        self._fn = self.graph
        self.name = self.graph.name

    def __call__(self, x, training=False):
        if self.prepare is not None:
            x = self.prepare(x)
        out = self.graph(x, training=training) if self.graph is not None else self._fn(x)
        return tf.cast(out, tf.float32)  # mixed precision: the constraint runs in float32


class DecoyEngine:
    """Solves every (input, patch, sign) decoy problem of a DecoyConfig, in batches.

    Args:
        model: the user's model (never changed).
        config: a ``DecoyConfig``.
        input_shape: the explainer's input shape (without the batch axis).
        prepare: the explainer's input adaptation (``InputAdapter.prepare``), or None.

    Attributes:
        sub_model: ``F_l`` as a callable ``LayerFunction`` on the explainer's inputs; it
            runs the user's own layers (nothing is copied, changed or called symbolically).
        num_patches: patches per input; ``num_decoys`` is twice that ("optimized") or
            equal to it ("constant").
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
        has_channels = len(self.input_shape) >= 2
        self.spatial_shape = self.input_shape[:-1] if has_channels else self.input_shape
        self.has_channels = has_channels
        ndim = len(self.spatial_shape)
        chosen = masks_lib.auto_patch(self.spatial_shape) if config.patch is None else config.patch
        patch = masks_lib.per_axis(chosen, ndim, "patch")
        stride = masks_lib.per_axis(config.stride if config.stride is not None else patch,
                                    ndim, "stride")
        for size, p in zip(self.spatial_shape, patch):
            if p > size:
                raise ValueError(
                    f"Expected `patch` <= the input's spatial shape {self.spatial_shape}. "
                    f"Received: patch={config.patch!r}"
                )
        self.patch, self.stride = patch, stride
        self.starts = masks_lib.patch_grid(self.spatial_shape, patch, stride)
        self.num_patches = len(self.starts)
        self.num_decoys = self.num_patches * (2 if config.kind == "optimized" else 1)
        self.patch_features = int(np.prod(patch)) * (self.input_shape[-1] if has_channels else 1)
        self.crop_plan, self.reason = self._plan(model)
        self.cropping = self.crop_plan is not None
        if self.cropping:
            plan = self.crop_plan
            self._footprints = tf.constant(plan.footprints[..., None], tf.float32)
            self._offsets = tf.constant(plan.offsets, tf.int32)
            # Each crop's F_l(x) is a window of the full F_l(x) (the plan guarantees it).
            self._out_offsets = tf.constant(plan.output_offsets, tf.int32)
            self._patch_offsets = tf.constant(plan.patch_offsets, tf.int32)
        self._starts = tf.constant(self.starts, tf.int32)
        self._write_fused = tf.function(_write_patches, jit_compile=True)  # built once
        logger.info("%s", self.describe())

    # ---------------------------------------------------------------- crop planning
    def _plan(self, model):
        if self.config.crop is False:
            return None, "cropping disabled (crop=False): constraint on the full input"
        if not self.has_channels:
            return None, "feature-vector input: constraint on the full input"
        if self.sub_model.graph is None:
            return None, ("layer given as a callable (no graph to analyse): constraint on "
                          "the full input")
        geometries, why = rf.graph_geometry(self.sub_model.graph, self.spatial_shape)
        if geometries is None:
            return None, f"{why}: constraint on the full input"
        plan = rf.plan_crops(geometries, self.starts, self.patch)
        if plan is None:
            return None, "crops would not be smaller than the input: constraint on the full input"
        mismatch = self._verify(plan)
        if mismatch is not None:
            return None, f"crop check failed ({mismatch}): constraint on the full input"
        return plan, (f"constraint on {plan.crop_shape} crops of the {self.spatial_shape} input "
                      f"({plan.fraction:.1%} of the area), verified exact on a probe")

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

    def _verify(self, plan):
        """Cropped evaluation equals the full sub-model on a probe, for every patch."""
        lo, hi = self.bounds
        rng = np.random.default_rng(12345)
        x = rng.uniform(lo, hi, size=(1,) + self.input_shape).astype(np.float32)
        base = self.sub_model(x, training=False).numpy()[0]
        scale = max(float(np.abs(base).max()), 1e-6)
        patches = range(self.num_patches)
        if self.num_patches > 64:
            picks = rng.choice(self.num_patches, 48, replace=False).tolist()
            patches = sorted(set(picks) | {0, self.num_patches - 1})
        masks = masks_lib.patch_masks(self.spatial_shape, self.starts[list(patches)],
                                      self.patch)[..., None]
        perturbed = np.where(masks > 0, rng.uniform(lo, hi, masks.shape[:1] + self.input_shape),
                             x).astype(np.float32)
        full = self.sub_model(perturbed, training=False).numpy()
        for row, i in enumerate(patches):
            window = tuple(slice(o, o + n) for o, n in zip(plan.offsets[i], plan.crop_shape))
            cropped = self.sub_model(perturbed[(row,) + window][None]).numpy()[0]
            index = np.argwhere(plan.footprints[i])
            full_index = index + plan.output_offsets[i]
            got = cropped[tuple(index.T)]
            want = full[row][tuple(full_index.T)]
            error = float(np.abs(got - want).max()) if len(index) else 0.0
            if error > _PROBE_RTOL * scale:
                return f"patch {i}: max difference {error:.2e} at scale {scale:.2e}"
            outside = np.ones(full.shape[1:-1], bool)
            outside[tuple(full_index.T)] = False
            change = float(np.abs(full[row] - base)[outside].max()) if outside.any() else 0.0
            if change > _PROBE_RTOL * scale:
                return f"patch {i}: layer changes outside its footprint by {change:.2e}"
        return None

    # ---------------------------------------------------------------- solving (TF ops)
    def _to_model(self, z):
        return z if self.has_channels else z[..., 0]

    def _from_model(self, x):
        return x if self.has_channels else x[..., None]

    def layer_scale(self, x):
        """``max |F_l(x)|`` per input, ``(b,)``."""
        f = self.sub_model(x, training=False)
        return tf.reduce_max(tf.reshape(tf.abs(f), [tf.shape(f)[0], -1]), axis=1)

    def epsilon(self, x, layer_x=None):
        """The tolerance ε per input, ``(b,)`` (``layer_x``: ``F_l(x)`` if already known)."""
        if self.config.relative_epsilon:
            if layer_x is None:
                return self.config.epsilon * self.layer_scale(x)
            flat = tf.reshape(tf.abs(layer_x), [tf.shape(layer_x)[0], -1])
            return self.config.epsilon * tf.reduce_max(flat, axis=1)
        return tf.fill([tf.shape(x)[0]], self.config.epsilon)

    def _pairs(self, x, pair_start, pairs):
        """``(pair indices (pairs,), patch index of each row (pairs · b,))``.

        Rows are ordered pair-major: row ``r`` is input ``r % b`` of pair ``r // b``.
        """
        pair = pair_start + tf.range(pairs)
        patch_index = pair // 2 if self.config.kind == "optimized" else pair
        return pair, tf.repeat(patch_index, tf.shape(x)[0])

    def solve(self, x, pair_start, pairs, layer_x=None):
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

        Returns:
            ``(values (pairs, b, *patch, C), found (pairs, b) bool,
            perturbation (pairs, b))`` — ``C`` is 1 for feature vectors; ``found``: some
            iterate was feasible (else the values are ``x``'s); ``perturbation``: mean
            |x̃ − x| over the patch's features.
        """
        config = self.config
        batch = tf.shape(x)[0]
        pair, rows_patch = self._pairs(x, pair_start, pairs)
        x_model = self._from_model(x)  # (b, *spatial, C)
        rows_input = tf.tile(tf.range(batch), [pairs])
        rows = tf.range(pairs * batch)
        starts = tf.gather(self._starts, rows_patch)

        def finish(values, found, original):
            change = tf.reduce_sum(tf.abs(values - original),
                                   axis=list(range(1, len(values.shape))))
            return (tf.reshape(values, tf.concat([[pairs, batch], tf.shape(values)[1:]], 0)),
                    tf.reshape(found, [pairs, batch]),
                    tf.reshape(change / self.patch_features, [pairs, batch]))

        if config.kind == "constant":  # the patch takes the input's mean, per channel
            original = tf.gather_nd(x_model, _window_indices(rows_input, starts, self.patch))
            mean = tf.reduce_mean(x_model, axis=list(range(1, len(x_model.shape) - 1)),
                                  keepdims=True)
            values = tf.gather(mean, rows_input) + tf.zeros_like(original)
            return finish(values, tf.ones([pairs * batch], tf.bool), original)
        sign = tf.repeat(1.0 - 2.0 * tf.cast(pair % 2, tf.float32), batch)
        if layer_x is None:
            layer_x = self.sub_model(x, training=False)
        epsilon = tf.tile(self.epsilon(x, layer_x), [pairs])

        if self.cropping:
            # The solver sees only each problem's crop, gathered straight from x.
            plan = self.crop_plan
            base = tf.gather_nd(x_model, _window_indices(
                rows_input, tf.gather(self._offsets, rows_patch), plan.crop_shape))
            window = tf.gather(self._patch_offsets, rows_patch)
            features = self.sub_model
            reference = tf.gather_nd(layer_x, _window_indices(
                rows_input, tf.gather(self._out_offsets, rows_patch), plan.output_shape))
            footprint = tf.gather(self._footprints, rows_patch)
        else:
            base, window, footprint = expand(x_model, pairs), starts, None
            reference = expand(layer_x, pairs)

            def features(z):
                return self.sub_model(self._to_model(z), training=False)

        index = _window_indices(rows, window, self.patch)
        original = tf.gather_nd(base, index)
        values, found, _ = self._optimise(base, index, original, sign, epsilon, features,
                                          reference, footprint, pair, batch)
        return finish(values, found, original)

    def decoy_images(self, x, pair_start, values):
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
        rows = tf.reshape(values, tf.concat([[-1], tf.shape(values)[2:]], 0))
        index = _window_indices(tf.range(tf.shape(rows)[0]), tf.gather(self._starts, rows_patch),
                                self.patch)
        write = self._write_fused if self.fuse else _write_patches
        decoys = self._to_model(write(self._from_model(x), index, rows))
        return tf.reshape(decoys, tf.concat([[pairs, tf.shape(x)[0]], self.input_shape], 0))

    def _optimise(self, base, index, start, sign, epsilon, features, reference, footprint,
                  pair, batch):
        """Projected Adam on the patch values, a per-problem multiplier, the best iterate.

        The variables are the patch's values only (``index``: ``(K, *patch, 1 + ndim)``
        indices of each problem's patch in ``base``; ``start``: their values there); each
        iterate is ``base`` with its patch replaced, so everything outside the patch is
        ``base`` bit for bit.
        ``features(z)`` is ``F_l`` of the (cropped) iterate; ``footprint`` marks the units
        compared with ``reference`` (None: all). Feasibility is the constraint itself,
        ``max_j |F_l(z) − F_l(x)|_j ≤ ε``. The penalty is the sum of the units' excess,
        ``λ · Σ_j relu(|ΔF_j| − ε) / ε``, which pushes every violating unit at once; its
        gradient with respect to ``F_l`` is written out (``λ/ε · sign(ΔF)`` where a unit
        violates) and back-propagated with ``output_gradients``, so the loop adds to the
        sub-model's own forward and backward pass only a few element-wise passes. With
        ``fuse=True`` (the default) those passes run as two XLA-fused kernels.

        Returns:
            ``(best patch values (K, *patch, C), found (K,) bool, steps taken)``.
        """
        config = self.config
        lo, hi = self.bounds
        step = config.learning_rate * (hi - lo)  # per channel for embedding boxes
        growth = config.multiplier_growth
        per_row = [-1] + [1] * (len(start.shape) - 1)
        sign = tf.reshape(sign, per_row)
        axes = list(range(1, len(start.shape)))
        # A problem has stalled when its best feasible objective has not grown by 1% of
        # one full Adam step over the patch since the last time it did.
        min_gain = 0.01 * float(np.mean(step)) * self.patch_features
        surrogate_grad = -sign / float(self.patch_features)
        tau = config.tau
        rows = tf.shape(base)[0]

        def project(p):
            delta = p - start
            if tau is not None:
                delta = tf.clip_by_value(delta, -tau, tau)
            return tf.clip_by_value(start + delta, lo, hi)

        def place(p):
            return tf.tensor_scatter_nd_update(base, index, p)

        def constraint(f, lam):
            """``(dPenalty/dF_l, max violation)`` per row."""
            diff = f - reference
            units = tf.abs(diff) if footprint is None else tf.abs(diff) * footprint
            unit_axes = list(range(1, len(f.shape)))
            violation = tf.reduce_max(units, axis=unit_axes)
            scale = tf.reshape(lam / tf.maximum(epsilon, 1e-12), [-1] + [1] * len(unit_axes))
            limit = tf.reshape(epsilon, [-1] + [1] * len(unit_axes))
            grad = tf.where(units > limit, tf.sign(diff) * scale, tf.zeros_like(diff))
            return grad, violation

        def update(s, grad, violation):
            """Records the evaluated iterate, then one projected Adam step."""
            p = s["p"]
            obj = tf.reduce_sum(tf.nn.relu(sign * (p - start)), axis=axes)
            feasible = violation <= epsilon
            better = feasible & (obj > s["best_obj"])
            best_obj = tf.where(better, obj, s["best_obj"])
            gained = best_obj > s["anchor"] + min_gain
            recorded = dict(
                s, best=tf.where(tf.reshape(better, per_row), p, s["best"]), best_obj=best_obj,
                found=s["found"] | feasible, stall=tf.where(gained, 0, s["stall"] + 1),
                anchor=tf.where(gained, best_obj, s["anchor"]))
            if grad is None:
                return recorded
            grad = tf.gather_nd(grad, index) + surrogate_grad
            lam = tf.where(violation > epsilon, s["lam"] * growth,
                           tf.maximum(s["lam"] / growth, 1e-6))
            t = s["t"] + 1
            m = 0.9 * s["m"] + 0.1 * grad
            v = 0.999 * s["v"] + 0.001 * tf.square(grad)
            t_float = tf.cast(t, tf.float32)
            m_hat = m / (1.0 - tf.pow(0.9, t_float))
            v_hat = v / (1.0 - tf.pow(0.999, t_float))
            p = project(p - step * m_hat / (tf.sqrt(v_hat) + 1e-12))
            return dict(recorded, t=t, p=p, z=place(p), m=m, v=v, lam=lam)

        if self.fuse:
            constraint = tf.function(constraint, jit_compile=True)
            update_step = tf.function(update, jit_compile=True)
        else:
            update_step = update

        # Random start one step into the patch (common to every input of a pair).
        draws = _random.uniform(start.shape[1:], config.seed, pair)
        p = project(start + sign * step * tf.repeat(draws, batch, axis=0))
        state = dict(
            t=tf.constant(0, tf.int32), p=p, z=place(p), m=tf.zeros_like(p),
            v=tf.zeros_like(p), lam=tf.fill([rows], config.initial_multiplier), best=start,
            best_obj=tf.zeros([rows]), found=tf.zeros([rows], tf.bool),
            stall=tf.zeros([rows], tf.int32), anchor=tf.zeros([rows]),
        )

        def body(s):
            with tf.GradientTape() as tape:
                tape.watch(s["z"])
                f = features(s["z"])
            grad_f, violation = constraint(f, s["lam"])
            grad = tape.gradient(f, s["z"], output_gradients=grad_f)
            return (update_step(s, grad, violation),)

        def cond(s):
            running = s["t"] < config.steps
            if config.patience:
                running = running & tf.reduce_any(s["stall"] < config.patience)
            return running

        (state,) = tf.while_loop(cond, body, (state,))
        _, violation = constraint(features(state["z"]), state["lam"])
        state = update(state, None, violation)  # the last iterate counts too
        return state["best"], state["found"], state["t"]


def _write_patches(x, index, values):
    """Row ``r = p · b + i`` is ``x[i]`` with ``values[r]`` written at ``index[r]``."""
    copies = tf.shape(values)[0] // tf.shape(x)[0]
    tiled = tf.reshape(tf.broadcast_to(x[None], tf.concat([[copies], tf.shape(x)], 0)),
                       tf.concat([[-1], tf.shape(x)[1:]], 0))
    return tf.tensor_scatter_nd_update(tiled, index, values)


def _window_indices(rows, starts, lengths):
    """``(K, *lengths, 1 + ndim)`` indices ``[rows[k], starts[k] + offset]`` of K windows."""
    count = tf.shape(starts)[0]
    ndim = len(lengths)
    grids = [rows]
    for axis, length in enumerate(lengths):
        grids.append(starts[:, axis:axis + 1] + tf.range(length)[None])
    parts = []
    for axis, grid in enumerate(grids):
        shape = [-1] + [1] * ndim
        if axis:
            shape[axis] = lengths[axis - 1]
        part = tf.reshape(grid, shape)
        parts.append(tf.broadcast_to(part, tf.concat([[count], lengths], 0)))
    return tf.stack(parts, axis=-1)
