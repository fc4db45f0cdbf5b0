"""Interpretation attacks (Ghorbani, Abid & Zou, AAAI 2019) against any explainer.

Small input perturbations, within an L∞ budget and the value range and never changing the
predicted label, that move a saliency map as much as possible:

- ``"topk"``: lower the saliency of the original top-k features;
- ``"targeted"``: raise the saliency of a chosen region (default: the bottom-right 4×4);
- ``"mass_center"``: move the map's centre of mass away from where it was.

The attack gradient is the gradient of the objective through the *base* method's map on
a copy of the network with ReLU replaced by softplus (a ReLU network's saliency has zero
input-gradient almost everywhere). For a decoy-enhanced explainer this is a transfer
attack: the perturbation is crafted on the base map and its effect measured on the
explainer's own (DANCE) map — the robustness question the DANCE paper asks. Each
iteration takes a signed step; a step that changes the predicted label is rejected for
that input; every ``check_every`` steps the explainer's real maps are measured and the best
perturbation so far is kept.
"""

import dataclasses

import keras
import numpy as np
from keras import ops

from keras_dance import _validation, backend
from keras_dance._similarity import spearman
from keras_dance._targets import IndexTargets
from keras_dance.metrics.sensitivity import sensitivity
from keras_dance.postprocess import postprocess

KINDS = ("topk", "targeted", "mass_center")


def softplus_copy(model, beta=10.0):
    """A copy of ``model`` with every ReLU replaced by ``softplus(β·x)/β`` (weights copied)."""
    def smooth(t):
        return ops.softplus(beta * t) / beta

    def clone_function(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.ReLU):
            return keras.layers.Activation(smooth, name=layer.name)
        if getattr(layer, "activation", None) is keras.activations.relu or config.get(
                "activation") == "relu":
            clone = layer.__class__.from_config(config)
            clone.activation = smooth
            return clone
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone_function)
    copy.set_weights(model.get_weights())
    return copy


@dataclasses.dataclass
class AttackResult:
    """What an attack did, per input.

    Attributes:
        x_adv: the perturbed inputs (the best found; ``x`` itself if nothing helped).
        topk_intersection: fraction of the original top-k features still in the top k.
        spearman: rank correlation of the post-processed maps before and after.
        center_shift: distance between the maps' centres of mass (in positions).
        sensitivity: ``‖P(E(x)) − P(E(x̂))‖₂ / ‖x − x̂‖₂`` (NaN where x̂ = x).
        label_kept: the predicted label is unchanged (always True by construction).
    """

    x_adv: np.ndarray
    topk_intersection: np.ndarray
    spearman: np.ndarray
    center_shift: np.ndarray
    sensitivity: np.ndarray
    label_kept: np.ndarray


def _coordinates(spatial_shape):
    grids = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in spatial_shape], indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=-1)  # (positions, ndim)


def _centers(shown, coordinates):
    flat = shown.reshape(len(shown), -1)
    mass = np.maximum(flat.sum(1, keepdims=True), 1e-12)
    return flat @ coordinates / mass


def _topk(shown, k):
    flat = shown.reshape(len(shown), -1)
    return np.argsort(-flat, axis=1, kind="stable")[:, :k]


def attack(explainer, x, kind="topk", epsilon=8 / 255, step_size=1 / 255, iterations=100,
           k=None, region=None, value_range=(0.0, 1.0), beta=10.0, check_every=10, targets=None):
    """Runs one interpretation attack on a batch.

    Args:
        explainer: a ``kd.Explainer`` (plain or decoy-enhanced).
        x: inputs ``(B, *input_shape)`` inside ``value_range``.
        kind: one of ``KINDS``. Defaults to "topk".
        epsilon: L∞ budget as a fraction of the value range (> 0). Defaults to 8/255.
        step_size: signed step as a fraction of the value range (> 0). Defaults to 1/255.
        iterations: number of steps (>= 1). Defaults to 100.
        k: features in the top-k set. Defaults to 5% of the positions.
        region: boolean mask of the spatial positions to raise ("targeted"); defaults to
            the bottom-right 4×4 (images) or last 4 positions.
        value_range: the box. Defaults to (0, 1).
        beta: softplus sharpness of the attack copy. Defaults to 10.
        check_every: measure the real maps every this many steps. Defaults to 10.
        targets: classes to explain; None: the predictions.

    Returns:
        An ``AttackResult``.
    """
    from keras_dance.explainer import Explainer

    if not isinstance(explainer, Explainer):
        raise TypeError(f"Expected `explainer` to be a kd.Explainer. Received: explainer of "
                        f"type {type(explainer).__name__}")
    if not _validation.is_choice(kind, KINDS):
        raise ValueError(f"Expected `kind` to be one of {list(KINDS)}. Received: kind={kind!r}")
    for name, value in (("epsilon", epsilon), ("step_size", step_size), ("beta", beta)):
        if (isinstance(value, bool) or not isinstance(value, (int, float, np.number))
                or not np.isfinite(value) or not value > 0):
            raise ValueError(f"Expected `{name}` > 0 (a finite number). Received: {name}={value!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"Expected `iterations` >= 1. Received: iterations={iterations!r}")
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        lo = hi = float("nan")
    if not lo < hi:
        raise ValueError(f"Expected `value_range` (lo, hi) with lo < hi. Received: {value_range!r}")
    x = np.asarray(x, np.float32)
    if x.min() < lo or x.max() > hi:
        raise ValueError(f"Expected `x` inside value_range {value_range}. Received: values in "
                         f"[{x.min()}, {x.max()}]")
    budget, step = epsilon * (hi - lo), step_size * (hi - lo)
    has_channels = x.ndim >= 3
    spatial_shape = x.shape[1:-1] if has_channels else x.shape[1:]
    positions = int(np.prod(spatial_shape))
    k = max(1, int(round(0.05 * positions))) if k is None else int(k)
    if region is None:
        region = np.zeros(spatial_shape, bool)
        region[tuple(slice(-4, None) for _ in spatial_shape)] = True
    region = np.asarray(region, bool)
    if region.shape != tuple(spatial_shape):
        raise ValueError(f"Expected `region` of shape {tuple(spatial_shape)}. "
                         f"Received: region.shape={region.shape}")
    coordinates = _coordinates(spatial_shape)

    labels = explainer.predict_classes(x)
    targets = labels if targets is None else np.asarray(targets, np.int32)
    original = postprocess(explainer.explain(x, targets), reduce_channels=has_channels)
    original_topk = _topk(original, k)
    original_center = _centers(original, coordinates)

    surrogate = _surrogate_step(explainer, softplus_copy(explainer.model, beta), kind,
                                original_topk, region, original_center, coordinates,
                                has_channels)

    def measures(shown):
        """Success measures of post-processed maps against the original ones."""
        topk = _topk(shown, k)
        intersection = np.array([len(np.intersect1d(a, b)) / k
                                 for a, b in zip(original_topk, topk)], np.float32)
        shift = np.linalg.norm(_centers(shown, coordinates) - original_center,
                               axis=1).astype(np.float32)
        flat = shown.reshape(len(shown), -1)
        mass = (flat * region.ravel()).sum(1) / np.maximum(flat.sum(1), 1e-12)
        score = {"topk": -intersection, "targeted": mass, "mass_center": shift}[kind]
        return score, intersection, shift

    best, best_shown = x.copy(), original.copy()
    best_score = measures(original)[0]
    current = x.copy()
    targets_t = ops.convert_to_tensor(targets, "int32")
    for iteration in range(1, iterations + 1):
        direction = ops.convert_to_numpy(surrogate(ops.convert_to_tensor(current), targets_t))
        proposal = np.clip(current - step * np.sign(direction), x - budget, x + budget)
        proposal = np.clip(proposal, lo, hi).astype(np.float32)
        kept = explainer.predict_classes(proposal) == labels
        current = np.where(kept.reshape((-1,) + (1,) * (x.ndim - 1)), proposal, current)
        if iteration % check_every == 0 or iteration == iterations:
            shown = postprocess(explainer.explain(current, targets), reduce_channels=has_channels)
            score = measures(shown)[0]
            improved = score > best_score
            best[improved], best_shown[improved] = current[improved], shown[improved]
            best_score = np.where(improved, score, best_score)

    _, intersection, shift = measures(best_shown)
    moved = np.abs(best - x).reshape(len(x), -1).max(1) > 0
    raw_sensitivity = np.full(len(x), np.nan, np.float32)
    if moved.any():
        raw_sensitivity[moved] = sensitivity(original[moved], best_shown[moved], x[moved],
                                             best[moved], processed=True)
    return AttackResult(
        x_adv=best,
        topk_intersection=intersection,
        spearman=spearman(original, best_shown),
        center_shift=shift,
        sensitivity=raw_sensitivity,
        label_kept=explainer.predict_classes(best) == labels,
    )


def _surrogate_step(explainer, smooth_model, kind, original_topk, region, original_center,
                    coordinates, has_channels):
    """A compiled ``(x, targets) -> d objective / d x`` through the softplus copy's map."""
    from keras_dance.explainer import Explainer

    surrogate = Explainer(smooth_model, method=explainer.method, batch_size=explainer.batch_size,
                          preprocess=explainer.preprocess, input_shape=explainer.input_shape)
    topk_mask = np.zeros((len(original_topk), int(np.prod(region.shape))), np.float32)
    for row, index in enumerate(original_topk):
        topk_mask[row, index] = 1.0
    topk_mask = ops.convert_to_tensor(topk_mask)
    region_flat = ops.convert_to_tensor(region.ravel().astype(np.float32))
    center = ops.convert_to_tensor(original_center, "float32")
    coords = ops.convert_to_tensor(coordinates)

    def objective(x, targets):
        maps = surrogate.method(x, surrogate.forward, IndexTargets(targets), surrogate.budget)
        relevance = ops.abs(maps)
        if has_channels:
            relevance = ops.sum(relevance, axis=-1)
        flat = ops.reshape(relevance, (ops.shape(x)[0], -1))
        total = ops.sum(flat, axis=1) + 1e-12
        if kind == "topk":
            return ops.sum(flat * topk_mask, axis=1) / total
        if kind == "targeted":
            return -ops.sum(flat * region_flat, axis=1) / total
        centers = ops.matmul(flat, coords) / total[:, None]
        return -ops.norm(centers - center + 1e-9, axis=1)

    def gradient(x, targets):
        return backend.gradient(lambda rows: objective(rows, targets), x)

    return backend.compile(gradient, variables=surrogate.model_view.variables)
