"""Methods on analytic functions with known gradients, and on small Keras models."""

import numpy as np
import pytest
import tensorflow as tf

import keras_dance as kd
import keras_dance._random  # noqa: F401
from keras_dance._targets import IndexTargets
from helpers import ModelFunction, linear_model, small_conv_model

# float32 arithmetic on O(1) values: 1e-5 relative covers accumulation order.
TOL = dict(rtol=1e-5, atol=1e-6)


def run(method, x, forward, targets, max_expansion=None):
    x = tf.constant(x, tf.float32)
    return method(x, forward, IndexTargets(targets), max_expansion).numpy()


@pytest.fixture
def quadratic():
    """f(x) = ½ xᵀAx (one output), A symmetric: gradient Ax, IG from 0 = ½ x ⊙ Ax."""
    rng = np.random.default_rng(1)
    m = rng.normal(size=(5, 5)).astype(np.float32)
    a = (m + m.T) / 2
    forward = ModelFunction(
        lambda x: 0.5 * tf.reduce_sum(x * tf.matmul(x, a), axis=-1, keepdims=True), 1)
    return a, forward


def test_gradient_and_gxi_of_a_linear_model():
    w = np.arange(12, dtype=np.float32).reshape(4, 3) - 5
    model = linear_model(w)
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    targets = np.array([0, 2, 1])
    grads = kd.Explainer(model, "gradient").explain(x, targets)
    np.testing.assert_allclose(grads, w[:, targets].T, **TOL)
    gxi = kd.Explainer(model, "gradient_x_input").explain(x, targets)
    np.testing.assert_allclose(gxi, x * w[:, targets].T, **TOL)
    ig = kd.Explainer(model, "integrated_gradients").explain(x, targets)
    np.testing.assert_allclose(ig, x * w[:, targets].T, rtol=1e-5, atol=1e-5)


def test_quadratic_gradient_and_integrated_gradients(quadratic):
    a, forward = quadratic
    x = np.random.default_rng(2).normal(size=(4, 5)).astype(np.float32)
    zeros = np.zeros(4, np.int32)
    np.testing.assert_allclose(run(kd.methods.Gradient(), x, forward, zeros), x @ a, **TOL)
    np.testing.assert_allclose(
        run(kd.methods.GradientXInput(), x, forward, zeros), x * (x @ a), **TOL)
    # The integrand is linear in alpha, so the trapezoidal rule is exact.
    ig = run(kd.methods.IntegratedGradients(steps=7), x, forward, zeros)
    np.testing.assert_allclose(ig, 0.5 * x * (x @ a), rtol=1e-5, atol=1e-5)


def test_integrated_gradients_with_a_nonzero_baseline(quadratic):
    a, forward = quadratic
    x = np.random.default_rng(3).normal(size=(2, 5)).astype(np.float32)
    baseline = np.linspace(-1, 1, 5).astype(np.float32)
    ig = run(kd.methods.IntegratedGradients(steps=9, baseline=baseline), x, forward,
             np.zeros(2, np.int32))
    # ∫ A(b + α(x−b)) dα = A(b + x)/2, times (x − b).
    expected = (x - baseline) * ((baseline + x) @ a) / 2
    np.testing.assert_allclose(ig, expected, rtol=1e-5, atol=1e-5)


def test_integrated_gradients_completeness_on_the_digits_model(digits_model, digits_samples):
    x, _ = digits_samples
    explainer = kd.Explainer(digits_model, "integrated_gradients")
    targets = explainer.predict_classes(x)
    ig = explainer.explain(x, targets)
    logits = explainer._logits(x).numpy()[np.arange(len(x)), targets]
    base = explainer._logits(np.zeros_like(x)).numpy()[np.arange(len(x)), targets]
    total = ig.reshape(len(x), -1).sum(axis=1)
    # Completeness within 1% of f(x) − f(baseline) at the default 50 steps.
    np.testing.assert_allclose(total, logits - base, rtol=0.01)


def test_integrated_gradients_error_shrinks_with_steps(digits_model, digits_samples):
    x, _ = digits_samples
    errors = []
    for steps in (4, 16, 64):
        explainer = kd.Explainer(digits_model, kd.methods.IntegratedGradients(steps=steps))
        targets = explainer.predict_classes(x)
        ig = explainer.explain(x, targets)
        gap = (explainer._logits(x).numpy() - explainer._logits(np.zeros_like(x)).numpy())
        gap = gap[np.arange(len(x)), targets]
        errors.append(np.abs(ig.reshape(len(x), -1).sum(1) - gap).mean())
    assert errors[2] < errors[0]


def test_smoothgrad_of_a_linear_model_is_its_gradient():
    w = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    x = np.random.default_rng(1).uniform(size=(2, 6)).astype(np.float32)
    maps = kd.Explainer(linear_model(w), kd.methods.SmoothGrad(num_samples=7)).explain(x, 1)
    np.testing.assert_allclose(maps, np.tile(w[:, 1], (2, 1)), **TOL)


def test_smoothgrad_averages_the_wrapped_method_over_seeded_noise(quadratic):
    a, forward = quadratic
    x = np.random.default_rng(4).normal(size=(3, 5)).astype(np.float32)
    sg = kd.methods.SmoothGrad(num_samples=5, noise_level=0.2, value_range=(0, 2), seed=7)
    maps = run(sg, x, forward, np.zeros(3, np.int32))
    draws = np.stack([
        kd._random.normal([5], 7, [j]).numpy()[0] for j in range(5)])
    expected = np.mean([(x + 0.4 * d) @ a for d in draws], axis=0)
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-5)
    # Chunked over samples gives the same maps.
    np.testing.assert_allclose(run(sg, x, forward, np.zeros(3, np.int32), 2), maps, **TOL)


@pytest.mark.parametrize("cls, reduce", [
    (kd.methods.SquareGrad, lambda m: np.mean(m ** 2, axis=0)),
    (kd.methods.VarGrad, lambda m: np.var(m, axis=0)),
])
def test_squaregrad_and_vargrad_reduce_the_same_noisy_maps(quadratic, cls, reduce):
    a, forward = quadratic
    x = np.random.default_rng(4).normal(size=(3, 5)).astype(np.float32)
    method = cls(num_samples=5, noise_level=0.2, value_range=(0, 2), seed=7)
    maps = run(method, x, forward, np.zeros(3, np.int32))
    draws = np.stack([kd._random.normal([5], 7, [j]).numpy()[0] for j in range(5)])
    noisy_maps = np.stack([(x + 0.4 * d) @ a for d in draws])  # SmoothGrad's very samples
    np.testing.assert_allclose(maps, reduce(noisy_maps), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(run(method, x, forward, np.zeros(3, np.int32), 2), maps,
                               rtol=1e-4, atol=1e-5)  # chunked: same maps
    other = run(cls(num_samples=5, noise_level=0.2, value_range=(0, 2), seed=8), x, forward,
                np.zeros(3, np.int32))
    assert not np.allclose(other, maps)  # another seed, other noise
    again = kd.methods.get({"name": method.name, "config": method.get_config()})
    assert type(again) is cls and again.get_config() == method.get_config()


def _competition_reference(per_class, targets):
    """NumPy reference of the CGI rule: per_class (C, B, *f)."""
    out = np.zeros(per_class.shape[1:], np.float32)
    for b, y in enumerate(targets):
        m = per_class[:, b]
        my = m[y]
        keep = ((my > 0) & (my >= m.max(0))) | ((my < 0) & (my <= m.min(0)))
        out[b] = np.where(keep, my, 0)
    return out


def test_cgi_on_a_hand_built_case():
    # Rows: features, columns: classes. With x = 1, m_k(i) = W[i, k].
    w = np.array([[3, 1, 2], [-1, -2, 0.5], [1, 2, 2], [0, 0, 0]], np.float32)
    x = np.ones((3, 4), np.float32)
    maps = kd.Explainer(linear_model(w), "cgi").explain(x, np.array([0, 1, 2]))
    expected = np.array([[3, 0, 0, 0],     # class 0 wins feature 0 only
                         [0, -2, 2, 0],    # class 1: most negative on 1, ties on 2
                         [0, 0.5, 2, 0]],  # class 2: largest on 1, ties on 2
                        np.float32)
    np.testing.assert_array_equal(maps, expected)


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, 5, 1000])
def test_competitive_integrated_gradients_matches_the_reference(batch_size):
    model = small_conv_model(classes=4)
    x = np.random.default_rng(0).uniform(size=(3, 8, 8, 2)).astype(np.float32)
    ig = kd.methods.IntegratedGradients(steps=8)
    per_class = np.stack([kd.Explainer(model, ig).explain(x, k) for k in range(4)])
    targets = np.array([0, 3, 1])
    maps = kd.Explainer(model, kd.methods.Competitive(ig), batch_size=batch_size).explain(
        x, targets)
    np.testing.assert_allclose(maps, _competition_reference(per_class, targets), **TOL)
    assert np.count_nonzero(maps) > 0


def test_compete_keeps_ties():
    m = tf.constant([1.0, -1.0, 0.0])
    np.testing.assert_array_equal(
        kd.methods.compete(m, tf.constant([1.0, 2.0, 0.0]), tf.constant([0.0, -1.0, 0.0])),
        [1.0, -1.0, 0.0])


def test_method_registry_and_configs_round_trip():
    for name in kd.methods.METHOD_NAMES:
        method = kd.methods.get(name)
        again = kd.methods.get({"name": method.name, "config": method.get_config()})
        assert type(again) is type(method)
        assert again.get_config() == method.get_config()
    sg = kd.methods.SmoothGrad(kd.methods.IntegratedGradients(steps=3), num_samples=4)
    again = kd.methods.get({"name": "smoothgrad", "config": sg.get_config()})
    assert again.method.steps == 3 and again.num_samples == 4


@pytest.mark.parametrize("make, message", [
    (lambda: kd.methods.IntegratedGradients(steps=1), "steps"),
    (lambda: kd.methods.IntegratedGradients(baseline=np.nan), "baseline"),
    (lambda: kd.methods.SmoothGrad(num_samples=0), "num_samples"),
    (lambda: kd.methods.SmoothGrad(noise_level=-1), "noise_level"),
    (lambda: kd.methods.SmoothGrad(value_range=(1, 0)), "value_range"),
    (lambda: kd.methods.get("saliency"), "gradient_x_input"),
])
def test_bad_method_settings(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_counter_based_noise_is_standard_normal_and_xla_stable():
    draws = kd._random.normal(tf.constant([200_000]), 3, [1]).numpy()[0]
    # Standard errors at n = 2e5: mean 0.0022, std 0.0016; 5 sigma bounds.
    assert abs(draws.mean()) < 0.012 and abs(draws.std() - 1) < 0.008
    assert abs(np.mean(draws > 1.96) - 0.025) < 0.002
    other = kd._random.normal(tf.constant([200_000]), 3, [2]).numpy()[0]
    # Rows depend only on their own stream.
    pair = kd._random.normal(tf.constant([7]), 3, [2, 1]).numpy()
    # The same bits, whatever the length (our log/cos: no vectorised kernels' rounding).
    np.testing.assert_array_equal(pair[1], draws[:7])
    assert abs(np.corrcoef(draws, other)[0, 1]) < 0.012

    @tf.function(jit_compile=True)
    def compiled(stream):
        return kd._random.normal(tf.constant([8, 3]), 3, [stream])

    # The same bits under XLA (which fuses multiply-adds into FMAs: _unfused stops it).
    np.testing.assert_array_equal(compiled(tf.constant(1)).numpy(),
                                  kd._random.normal(tf.constant([8, 3]), 3, [1]).numpy())
