import numpy as np
import pytest

import keras_dance as kd


def test_postprocess_recipe_against_numpy_reference():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, 6, 5, 3)).astype(np.float32)
    shown = kd.postprocess(maps)
    assert shown.shape == (3, 6, 5)
    for raw, out in zip(maps, shown):
        reduced = np.abs(raw).max(axis=-1)
        q = np.percentile(reduced, 95)
        np.testing.assert_allclose(out, np.minimum(reduced, q) / q, rtol=1e-6)
        assert out.min() >= 0 and out.max() == 1.0
        assert np.mean(out == 1.0) >= 0.05  # the top 5% are winsorised to 1


def test_postprocess_zero_map_stays_zero_and_feature_vectors_keep_shape():
    np.testing.assert_array_equal(kd.postprocess(np.zeros((2, 4, 4, 1))), np.zeros((2, 4, 4)))
    vectors = kd.postprocess(np.array([[1.0, -2.0, 0.0, 4.0]]), percentile=100)
    np.testing.assert_allclose(vectors, [[0.25, 0.5, 0.0, 1.0]])


@pytest.mark.parametrize("kwargs, message", [
    (dict(maps=np.zeros(3)), "rank >= 2"),
    (dict(maps=np.zeros((1, 3)), percentile=0), "percentile"),
])
def test_postprocess_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kd.postprocess(**kwargs)
