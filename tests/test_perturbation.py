"""Occlusion, RISE, KernelSHAP and Guided Backprop against references written here."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_dance as kd
from helpers import small_conv_model


@pytest.fixture(scope="module")
def conv():
    """A small conv model with linear outputs (its outputs are the logits) and inputs."""
    model = small_conv_model(seed=3, activation=None, classes=4, shape=(8, 8, 2))
    x = np.random.default_rng(1).uniform(size=(3, 8, 8, 2)).astype(np.float32)
    return model, x


def test_occlusion_equals_a_numpy_loop(conv):
    model, x = conv
    method = kd.methods.Occlusion(patch=3, stride=2, baseline=0.25)
    maps = kd.Explainer(model, method=method).explain(x, targets=2)
    logits = lambda rows: model.predict(rows, verbose=0)[:, 2]  # noqa: E731
    full = logits(x)
    total = np.zeros((3, 8, 8))
    count = np.zeros((8, 8))
    for top in (0, 2, 4, 5):  # stride 2, the last start aligned to the border
        for left in (0, 2, 4, 5):
            occluded = x.copy()
            occluded[:, top:top + 3, left:left + 3, :] = 0.25
            total[:, top:top + 3, left:left + 3] += (full - logits(occluded))[:, None, None]
            count[top:top + 3, left:left + 3] += 1
    expected = np.repeat((total / count)[..., None], 2, axis=-1)
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", [
    kd.methods.Occlusion(patch=3, stride=1),
    kd.methods.RISE(num_masks=50, cells=3, seed=4),
    kd.methods.KernelSHAP(patch=4, num_samples=40, seed=2),
    kd.methods.ScoreCAM(layer="conv2"),
], ids=lambda m: m.name)
def test_the_memory_knob_does_not_change_the_maps(conv, method):
    model, x = conv
    small = kd.Explainer(model, method=method, batch_size=1).explain(x)
    large = kd.Explainer(model, method=method, batch_size=4096).explain(x)
    np.testing.assert_allclose(small, large, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make", [
    lambda seed: kd.methods.RISE(num_masks=40, cells=3, seed=seed),
    lambda seed: kd.methods.KernelSHAP(patch=4, num_samples=30, seed=seed),
], ids=["rise", "kernel_shap"])
def test_seeded_methods_repeat_and_differ_by_seed(conv, make):
    model, x = conv
    first = kd.Explainer(model, method=make(0)).explain(x)
    again = kd.Explainer(model, method=make(0)).explain(x)
    other = kd.Explainer(model, method=make(1)).explain(x)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_rise_equals_its_formula_with_its_masks(conv):
    model, x = conv
    method = kd.methods.RISE(num_masks=64, cells=4, probability=0.4, seed=9)
    maps = kd.Explainer(model, method=method, batch_size=50).explain(x, targets=1)
    masks = method.masks((8, 8), 0, 64).numpy()
    assert masks.shape == (64, 8, 8) and masks.min() >= 0 and masks.max() <= 1
    assert 0.25 < masks.mean() < 0.55  # about p, blurred by the upsampling
    rows = (x[None] * masks[:, None, ..., None]).reshape(-1, 8, 8, 2)
    probabilities = tf.nn.softmax(model.predict(rows, verbose=0)).numpy()[:, 1]
    expected = np.einsum("sb,shw->bhw", probabilities.reshape(64, 3), masks) / (64 * 0.4)
    np.testing.assert_allclose(maps[..., 0], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(maps[..., 0], maps[..., 1])


def test_kernel_shap_recovers_exact_shapley_values_of_a_linear_model():
    rng = np.random.default_rng(0)
    inputs = keras.Input((6, 6, 1))
    flat = keras.layers.Flatten()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, use_bias=True, name="linear")(flat))
    x = rng.uniform(size=(2, 6, 6, 1)).astype(np.float32)
    method = kd.methods.KernelSHAP(patch=(4, 4), num_samples=60, baseline=0.1, seed=5)
    maps = kd.Explainer(model, method=method).explain(x, targets=0)
    weights = model.get_layer("linear").kernel.numpy()[:, 0].reshape(6, 6)
    # Shapley value of a tile of a linear model: Σ over its positions of w (x − baseline).
    contribution = weights * (x[..., 0] - 0.1)
    tiles = [(slice(0, 4), slice(0, 4)), (slice(0, 4), slice(4, 6)),
             (slice(4, 6), slice(0, 4)), (slice(4, 6), slice(4, 6))]
    for top, left in tiles:
        phi = contribution[:, top, left].sum(axis=(1, 2))
        np.testing.assert_allclose(maps[:, top, left, 0].sum(axis=(1, 2)), phi,
                                   rtol=1e-3, atol=1e-4)


def test_kernel_shap_is_complete_on_a_nonlinear_model(conv):
    model, x = conv
    method = kd.methods.KernelSHAP(patch=3, num_samples=200, seed=1)
    maps = kd.Explainer(model, method=method).explain(x, targets=3)
    logits = model.predict(np.concatenate([x, np.zeros_like(x[:1])]), verbose=0)[:, 3]
    np.testing.assert_allclose(maps.sum(axis=(1, 2, 3)), logits[:3] - logits[3],
                               rtol=1e-3, atol=1e-4)


def test_perturbation_methods_take_feature_vectors():
    model = kd.datasets.load_model("cancer_mlp")
    x = kd.datasets.load_cancer()[2][:4]
    for method in (kd.methods.Occlusion(patch=5), kd.methods.KernelSHAP(patch=3),
                   kd.methods.RISE(num_masks=32)):
        maps = kd.Explainer(model, method=method).explain(x)
        assert maps.shape == x.shape and np.all(np.isfinite(maps))


def test_guided_backprop_equals_the_rule_by_hand():
    keras.utils.set_random_seed(2)
    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(7, activation="relu", name="hidden")(inputs)
    hidden = keras.layers.ReLU(name="again")(keras.layers.Dense(6, name="mix")(hidden))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(hidden))
    before = [w.copy() for w in model.get_weights()]
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    maps = kd.Explainer(model, method="guided_backprop").explain(x, targets=1)
    w1, b1, w2, b2, w3, _ = model.get_weights()
    pre1 = x @ w1 + b1
    pre2 = np.maximum(pre1, 0) @ w2 + b2
    upstream = np.tile(w3[:, 1], (4, 1))  # d logit_1 / d h2
    upstream = np.maximum(upstream, 0) * (pre2 > 0)  # guided ReLU: positive, active
    upstream = upstream @ w2.T
    upstream = np.maximum(upstream, 0) * (pre1 > 0)
    np.testing.assert_allclose(maps, upstream @ w1.T, rtol=1e-5, atol=1e-6)
    plain = kd.Explainer(model, method="gradient").explain(x, targets=1)
    assert not np.allclose(maps, plain)
    for mine, theirs in zip(model.get_weights(), before):
        np.testing.assert_array_equal(mine, theirs)


def test_guided_backprop_fails_the_randomisation_check_and_the_gradient_passes(
        digits_model, digits_samples):
    x, _ = digits_samples
    results, steps = {}, {}
    for name in ("guided_backprop", "gradient"):
        steps[name] = kd.sanity.model_randomisation(kd.Explainer(digits_model, method=name),
                                                    x, mode="full")
        results[name] = float(np.mean(steps[name][-1]["spearman_abs"]))
    # Adebayo et al.: Guided Backprop's maps survive randomising every weight.
    assert results["guided_backprop"] > 0.5 > results["gradient"], results
    assert not kd.sanity.passes(steps["guided_backprop"])
    assert kd.sanity.passes(steps["gradient"])


@pytest.mark.parametrize("make, message", [
    (lambda: kd.methods.Occlusion(patch=0), "patch"),
    (lambda: kd.methods.Occlusion(stride=(1, -1)), "stride"),
    (lambda: kd.methods.Occlusion(baseline=float("nan")), "baseline"),
    (lambda: kd.methods.RISE(probability=0), "probability"),
    (lambda: kd.methods.RISE(cells=1), "cells"),
    (lambda: kd.methods.KernelSHAP(num_samples=1), "num_samples"),
    (lambda: kd.methods.KernelSHAP(seed="a"), "seed"),
])
def test_bad_settings_name_the_argument(make, message):
    with pytest.raises((TypeError, ValueError), match=message):
        make()


def test_kernel_shap_needs_more_samples_than_features(conv):
    model, x = conv
    with pytest.raises(ValueError, match="num_samples"):
        kd.Explainer(model, method=kd.methods.KernelSHAP(patch=2, num_samples=10)).explain(x)


NEW_METHODS = ["gradcam", "gradcam_plus_plus", "layercam", "scorecam", "occlusion", "rise",
               "kernel_shap", "guided_backprop"]


def test_every_new_method_is_registered_and_takes_score_functions(conv):
    model, x = conv
    assert set(NEW_METHODS) <= set(kd.methods.METHOD_NAMES)
    for name in NEW_METHODS:
        explainer = kd.Explainer(model, method=name)
        by_index = explainer.explain(x, targets=1)
        by_function = explainer.explain(x, targets=lambda logits: logits[:, 1])
        np.testing.assert_allclose(by_function, by_index, rtol=1e-4, atol=1e-5,
                                   err_msg=name)
        assert by_index.shape == x.shape and np.all(np.isfinite(by_index)), name


def test_perturbation_maps_are_served_by_the_export(conv, tmp_path):
    model, x = conv
    explainer = kd.Explainer(model, method=kd.methods.RISE(num_masks=30, cells=3))
    explainer.export(tmp_path / "1")
    loaded = tf.saved_model.load(str(tmp_path / "1"))
    served = loaded.signatures["explain_target"](
        inputs=tf.constant(x), target=tf.constant([0, 1, 2], tf.int32))["saliency"].numpy()
    np.testing.assert_allclose(served, explainer.explain(x, targets=np.array([0, 1, 2])),
                               rtol=1e-5, atol=1e-6)


def test_kernel_shap_too_few_samples_is_refused_when_the_explainer_is_built():
    model = kd.datasets.load_model("configurations_resnet")  # 64x64, patch 4: 256 features
    with pytest.raises(ValueError) as caught:
        kd.Explainer(model, method=kd.methods.KernelSHAP(num_samples=200))
    # At the door, in our words: not from inside the compiled function (TensorFlow used to
    # wrap it in its tracing frames, "in user code: …").
    assert str(caught.value) == ("Expected `num_samples` above the number of features (256). "
                                 "Received: num_samples=200")
