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
