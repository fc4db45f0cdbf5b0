"""The evidence-at-depth tasks: the configurations task and model, the saturation probe."""

import keras
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import keras_dance as kd


def _places(mask, stamp):
    """Top-left corners where every pixel of ``stamp`` is inside ``mask``."""
    windows = sliding_window_view(mask, stamp.shape)
    return np.argwhere((windows | ~stamp).all(axis=(-2, -1)))


def test_configurations_are_deterministic_and_the_label_is_the_arrangement():
    a = kd.datasets.make_configurations(12, seed=4)
    for u, v in zip(a, kd.datasets.make_configurations(12, seed=4)):
        np.testing.assert_array_equal(u, v)
    images, labels, masks = a
    assert images.shape == (12, 64, 64, 1) and masks.shape == (12, 64, 64)
    assert 0 < labels.mean() < 1
    cross, square = kd.datasets._stamp("cross", 9), kd.datasets._stamp("square", 9)
    for image, label, mask in zip(images, labels, masks):
        np.testing.assert_allclose(image[..., 0][mask], 0.9)  # the parts, drawn exactly
        (cross_at,), (square_at,) = _places(mask, cross), _places(mask, square)
        assert mask.sum() == cross.sum() + square.sum()
        # Label 0: the cross is left of the square; the two are > 9 columns apart.
        assert (cross_at[1] < square_at[1]) == (label == 0)
        assert abs(int(cross_at[1]) - int(square_at[1])) > 9
        # Distractors are as bright as the parts: brightness alone does not find them.
        assert (image[..., 0][~mask] == np.float32(0.9)).sum() > 0


def test_the_shipped_configurations_model_is_deep_and_accurate():
    model = kd.datasets.load_model("configurations_resnet")
    convolutions = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    kinds = {type(l).__name__ for l in model.layers}
    assert len(convolutions) >= 10 and {"BatchNormalization", "Add"} <= kinds
    x, y, _ = kd.datasets.make_configurations(200, seed=2)  # the held-out split
    accuracy = np.mean(model.predict(x, verbose=0).argmax(1) == y)
    assert accuracy >= 0.95, accuracy
    engine = kd.Explainer(model, decoys=kd.DecoyConfig(layer="block1_out")).decoys
    assert engine.cropping and engine.num_decoys == 512  # patch 4 on 64×64 (auto)


def test_saturation_probe_the_gradient_is_blind_where_decoys_see():
    model = kd.datasets.saturating_model()
    x, y, masks = kd.datasets.make_saturation(4, seed=3)
    assert np.all(model.predict(x, verbose=0)[:, 1] > 0.9)  # the class is certain
    area = masks.mean()
    gradient = kd.Explainer(model).explain(x, y)
    # Saturated: the evidence's gradient is tiny, the linear context's is everywhere.
    np.testing.assert_allclose(kd.metrics.relevance_mass(gradient, masks), area, rtol=0.2)
    dance = kd.Explainer(model, decoys=kd.DecoyConfig(layer="detector", patch=4, steps=20))
    mass = kd.metrics.relevance_mass(dance.explain(x, y), masks)
    assert np.all(mass > 0.9), mass


@pytest.mark.parametrize("kwargs, name", [(dict(count=-1), "count"),
                                          (dict(count=2, size=8), "size")])
def test_generators_refuse_impossible_requests(kwargs, name):
    with pytest.raises(ValueError, match=f"Expected `{name}`"):
        kd.datasets.make_configurations(**kwargs)
