"""Metric extremes and NumPy references."""

import keras
import numpy as np
import pytest

import keras_dance as kd


def sum_model(size=6):
    """f(x) = sum(x) as a one-logit... two-class model: logits (sum(x), 0)."""
    inputs = keras.Input((size,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(inputs))
    weights = np.zeros((size, 2), np.float32)
    weights[:, 0] = 1.0
    model.get_layer("out").set_weights([weights, np.zeros(2, np.float32)])
    return model


def test_deletion_extremes_with_a_sum_model():
    model = sum_model()
    x = np.array([[0.9, -0.2, 0.5, 0.1, -0.7, 0.3]], np.float32)
    best = kd.metrics.deletion(model, x, x, targets=0, rank="signed")
    worst = kd.metrics.deletion(model, x, -x, targets=0, rank="signed")
    random = kd.metrics.deletion(model, x, np.random.default_rng(0).normal(size=x.shape),
                                 targets=0, rank="signed")
    assert best[0] < random[0] < worst[0]
    inserted_best = kd.metrics.insertion(model, x, x, targets=0, rank="signed")
    inserted_worst = kd.metrics.insertion(model, x, -x, targets=0, rank="signed")
    assert inserted_best[0] > inserted_worst[0]


def test_deletion_against_a_numpy_reference():
    model = sum_model(4)
    x = np.array([[0.4, 0.1, 0.8, 0.3]], np.float32)
    maps = np.array([[0.2, 0.9, 0.1, 0.5]], np.float32)
    auc, curves, fractions = kd.metrics.deletion(model, x, maps, targets=0, steps=4,
                                                 return_curves=True)
    order = [1, 3, 0, 2]
    expected = []
    for k in range(5):
        kept = x[0].copy()
        kept[order[:k]] = 0.0
        z = kept.sum()
        expected.append(np.exp(z) / (np.exp(z) + 1.0))
    np.testing.assert_allclose(curves[0], expected, rtol=1e-5)
    np.testing.assert_allclose(fractions, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(auc[0], np.trapezoid(expected, fractions), rtol=1e-5)


def test_deletion_bad_input():
    model = sum_model()
    x = np.zeros((2, 6), np.float32)
    with pytest.raises(ValueError, match="Expected `maps` with the shape of `x`"):
        kd.metrics.deletion(model, x, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="steps"):
        kd.metrics.deletion(model, x, x, steps=0)


def test_fidelity_extremes_and_neutral_value():
    model = sum_model()
    x = np.array([[0.9, 0.2, 0.5, 0.1, 0.7, 0.3]], np.float32)
    best = kd.metrics.fidelity(model, x, x, targets=0, normalise="minmax")
    worst = kd.metrics.fidelity(model, x, -x, targets=0, normalise="minmax")
    constant = kd.metrics.fidelity(model, x, np.full_like(x, 0.4), targets=0)
    assert best[0] < 0 < worst[0]
    np.testing.assert_allclose(constant, 0.0, atol=1e-6)


def test_fidelity_against_a_numpy_reference():
    model = sum_model(4)
    x = np.array([[0.4, 0.1, 0.8, 0.3]], np.float32)
    maps = np.array([[0.2, -0.9, 0.1, 0.5]], np.float32)
    got = kd.metrics.fidelity(model, x, maps, targets=0, normalise="minmax")
    e = (maps[0] - maps[0].min()) / (maps[0].max() - maps[0].min())
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731 — logits (sum, 0) → p = σ(sum)
    expected = -np.log(sigmoid((e * x[0]).sum()) / sigmoid((e.mean() * x[0]).sum()))
    np.testing.assert_allclose(got[0], expected, rtol=1e-5)
    # The other reading of the paper's formula: the unmasked input as the reference.
    got = kd.metrics.fidelity(model, x, maps, targets=0, normalise="minmax", reference="input")
    expected = -np.log(sigmoid((e * x[0]).sum()) / sigmoid(x[0].sum()))
    np.testing.assert_allclose(got[0], expected, rtol=1e-5)
    ones = kd.metrics.fidelity(model, x, np.ones_like(x), targets=0, reference="input")
    np.testing.assert_allclose(ones, 0.0, atol=1e-6)
    with pytest.raises(ValueError, match="Expected `reference`"):
        kd.metrics.fidelity(model, x, maps, reference="mean")


def test_sparseness_reference_and_extremes():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, 5, 4))
    got = kd.metrics.sparseness(maps)
    for m, g in zip(maps, got):
        a = np.sort(np.abs(m).ravel())
        n = len(a)
        reference = 1 - 2 * sum(a[k] / a.sum() * (n - (k + 1) + 0.5) / n for k in range(n))
        np.testing.assert_allclose(g, reference, rtol=1e-5)
    one_hot = np.zeros((1, 10))
    one_hot[0, 3] = -2.0
    np.testing.assert_allclose(kd.metrics.sparseness(one_hot), [0.9], rtol=1e-6)
    np.testing.assert_allclose(kd.metrics.sparseness(np.ones((1, 10))), [0.0], atol=1e-7)
    np.testing.assert_allclose(kd.metrics.sparseness(np.zeros((1, 10))), [0.0])


def test_localisation_reference_and_extremes():
    masks = np.zeros((2, 4, 4), bool)
    masks[:, 1:3, 1:3] = True
    perfect = masks[..., None].astype(np.float32)
    np.testing.assert_allclose(kd.metrics.relevance_mass(perfect, masks), [1, 1])
    uniform = np.ones((2, 4, 4, 1))
    np.testing.assert_allclose(kd.metrics.relevance_mass(uniform, masks), [0.25, 0.25])
    maps = np.random.default_rng(0).normal(size=(2, 4, 4, 3))
    reference = [np.abs(m).max(-1)[k].sum() / np.abs(m).max(-1).sum() for m, k in zip(maps, masks)]
    np.testing.assert_allclose(kd.metrics.relevance_mass(maps, masks), reference, rtol=1e-6)
    outside = np.zeros((2, 4, 4, 1))
    outside[:, 0, 0] = 5.0
    assert kd.metrics.pointing_game(perfect, masks).all()
    assert not kd.metrics.pointing_game(outside, masks).any()


def test_sensitivity_reference():
    rng = np.random.default_rng(0)
    maps, other = rng.normal(size=(2, 2, 5, 5, 1))
    x = rng.uniform(size=(2, 5, 5, 1))
    y = x + 0.1
    got = kd.metrics.sensitivity(maps, other, x, y)
    shown, shown_other = kd.postprocess(maps), kd.postprocess(other)
    expected = [np.linalg.norm(a - b) / np.linalg.norm(p - q)
                for a, b, p, q in zip(shown, shown_other, x, y)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(kd.metrics.sensitivity(maps, maps, x, y), [0, 0])


@pytest.mark.parametrize("call, message", [
    (lambda: kd.metrics.relevance_mass(np.zeros((2, 4, 4, 1)), np.zeros((2, 3, 4), bool)), "masks"),
    (lambda: kd.metrics.sensitivity(np.zeros((2, 3)), np.zeros((2, 4)), np.zeros((2, 3)),
                                    np.ones((2, 3))), "perturbed_maps"),
    (lambda: kd.metrics.sensitivity(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)),
                                    np.zeros((2, 3))), "differ"),
    (lambda: kd.metrics.fidelity(sum_model(), np.zeros((2, 6)), np.zeros((2, 5))), "maps"),
    (lambda: kd.metrics.sparseness(np.zeros(3)), "rank >= 2"),
])
def test_metric_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_probability_metrics_apply_the_explainers_preprocess():
    keras.utils.set_random_seed(0)
    dense = keras.layers.Dense(3)
    inputs = keras.Input((6,))
    inside = keras.Model(inputs, dense(keras.layers.Rescaling(2.0, offset=-1.0)(inputs)))
    raw_inputs = keras.Input((6,))
    outside = keras.Model(raw_inputs, dense(raw_inputs))
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(4, 6)).astype(np.float32)
    maps = rng.normal(size=x.shape).astype(np.float32)
    preprocess = lambda t: 2.0 * t - 1.0  # noqa: E731
    for metric in (kd.metrics.deletion, kd.metrics.insertion, kd.metrics.fidelity):
        np.testing.assert_allclose(metric(outside, x, maps, preprocess=preprocess),
                                   metric(inside, x, maps), rtol=1e-5)
    assert not np.allclose(kd.metrics.deletion(outside, x, maps),
                           kd.metrics.deletion(inside, x, maps))


@pytest.mark.parametrize("call, error, message", [
    (lambda: kd.postprocess(np.full((1, 4, 4, 1), np.nan)), ValueError, "finite values in `maps`"),
    (lambda: kd.postprocess(np.array([["a", "b"]])), TypeError, "numeric array"),
    (lambda: kd.postprocess(np.zeros((1, 4, 4, 1)), percentile="95"), ValueError, "percentile"),
    (lambda: kd.postprocess(np.zeros((1, 4, 4, 1)), reduce_channels="yes"), TypeError,
     "reduce_channels"),
    (lambda: kd.postprocess(np.zeros((1, 4, 4, 1)), channel_axis=0), ValueError,
     "channel_axis"),
    (lambda: kd.metrics.deletion(sum_model(), np.ones((2, 6)), np.ones((2, 6)), targets=0,
                                 baseline=np.nan), ValueError, "finite `baseline`"),
    (lambda: kd.metrics.deletion(sum_model(), np.ones((2, 6)), np.ones((2, 6)), targets=0,
                                 baseline=np.zeros(4)), ValueError, "broadcastable"),
    (lambda: kd.metrics.relevance_mass(np.ones((1, 4)), np.full((1, 4), np.nan)), ValueError,
     "boolean"),
    (lambda: kd.metrics.relevance_mass(np.ones((1, 4)), np.full((1, 4), "x")), TypeError,
     "numeric array"),
    (lambda: kd.metrics.pointing_game(np.ones((1, 4)), np.full((1, 4), 0.5)), ValueError,
     "boolean"),
    (lambda: kd.metrics.sensitivity(np.ones((1, 3)), np.ones((1, 3)), np.ones((1, 3)),
                                    np.full((1, 3), np.inf)), ValueError, "perturbed_x"),
])
def test_postprocess_and_metrics_refuse_nan_strings_and_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()
