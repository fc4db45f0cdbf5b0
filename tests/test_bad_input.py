"""The last defects of bad input: each one refused up front, with the argument named.

Each case was a silent success, an endless loop or a Python/NumPy message before; the
message checked here names the argument in Keras's "Expected … Received: …" style.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import small_conv_model

import keras_dance as kd


@pytest.fixture(scope="module")
def model():
    return small_conv_model(shape=(8, 8, 1))


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).uniform(size=(2, 8, 8, 1)).astype(np.float32)


def test_an_infinite_dataset_is_refused_instead_of_running_forever(model, x):
    explainer = kd.Explainer(model)
    with pytest.raises(ValueError, match=r"finite `x` dataset.*take\(n\)"):
        explainer.explain(tf.data.Dataset.from_tensors(x).repeat())
    # A finite one still works, batch by batch.
    maps = explainer.explain(tf.data.Dataset.from_tensors(x).repeat(2))
    assert maps.shape == (4, 8, 8, 1)


def test_explain_names_a_bad_return_details(model, x):
    with pytest.raises(TypeError, match="Expected `return_details` to be a bool"):
        kd.Explainer(model).explain(x, None, None, None)


@pytest.mark.parametrize("value_range", [{0: 1, 1: 2}, "01", ("0", "1"), (0, float("inf")),
                                         (True, 2), 5, (0, 1, 2)])
def test_decoy_value_range_must_be_two_finite_numbers(value_range):
    with pytest.raises(ValueError, match="Expected `value_range` to be \\(lo, hi\\)"):
        kd.DecoyConfig(layer="conv", value_range=value_range)


@pytest.mark.parametrize("growth", [float("inf"), float("nan"), 1.0, "2", True])
def test_decoy_multiplier_growth_must_be_finite_above_one(growth):
    with pytest.raises(ValueError, match="Expected `multiplier_growth` to be a finite number > 1"):
        kd.DecoyConfig(layer="conv", multiplier_growth=growth)


@pytest.mark.parametrize("config", [None, "c2", [("layer", "conv")]])
def test_decoy_from_config_needs_a_dict(config):
    with pytest.raises(TypeError, match="Expected `config` to be a dict"):
        kd.DecoyConfig.from_config(config)


def test_decoys_at_the_embedding_itself_are_refused_like_the_input_layer():
    keras.utils.set_random_seed(0)
    ids = keras.Input((6,), dtype="int32")
    embedded = keras.layers.Embedding(10, 4, name="embedding")(ids)
    h = keras.layers.Conv1D(3, 2, activation="relu", name="conv")(embedded)
    out = keras.layers.Dense(2)(keras.layers.GlobalMaxPooling1D()(h))
    text = keras.Model(ids, out)
    for layer in ("embedding", text.get_layer("embedding")):
        with pytest.raises(ValueError, match="not the embedding itself"):
            kd.Explainer(text, decoys=kd.DecoyConfig(layer=layer, patch=2))
    # The layer after it is fine.
    assert kd.Explainer(text, decoys=kd.DecoyConfig(layer="conv", patch=2)).decoys is not None


@pytest.mark.parametrize("metric", ["deletion", "insertion", "fidelity"])
def test_metrics_name_a_model_that_is_not_a_classifier(metric, model, x):
    function = getattr(kd.metrics, metric)
    maps = np.ones_like(x)
    with pytest.raises(TypeError, match="Expected `model` to be a keras.Model"):
        function(None, x, maps)
    with pytest.raises(TypeError, match="pass `model=explainer.model`"):
        function(kd.Explainer(model), x, maps)
    inputs = keras.Input((8, 8, 1))
    flat = keras.layers.Flatten()(inputs)
    two = keras.Model(inputs, [keras.layers.Dense(3)(flat), keras.layers.Dense(2)(flat)])
    with pytest.raises(ValueError, match="one output of shape \\(B, classes\\)"):
        function(two, x, maps)


def test_postprocess_refuses_empty_maps_and_out_of_range_axes():
    with pytest.raises(ValueError, match="Expected non-empty `maps`"):
        kd.postprocess(np.zeros((0, 4, 4, 1)))
    with pytest.raises(ValueError, match="Expected non-empty `maps`"):
        kd.postprocess(np.zeros((2, 0, 4, 1)))
    for axis in (-5, 4, 0, -4):
        with pytest.raises(ValueError, match="Expected `channel_axis`"):
            kd.postprocess(np.ones((2, 4, 4, 1)), channel_axis=axis)
    assert kd.postprocess(np.ones((2, 4, 4, 3)), channel_axis=-3).shape == (2, 4, 3)


def test_integrated_gradients_baseline_must_broadcast_to_one_input(model, x):
    with pytest.raises(ValueError, match="broadcastable to one input \\(8, 8, 1\\)"):
        kd.Explainer(model, kd.methods.IntegratedGradients(baseline=np.zeros((3, 3))))
    # Wrapped methods check it too, when the explainer is built.
    with pytest.raises(ValueError, match="baseline"):
        kd.Explainer(model, kd.methods.SmoothGrad(
            kd.methods.IntegratedGradients(baseline=np.zeros((2, 8, 8, 1)))))
    good = kd.Explainer(model, kd.methods.IntegratedGradients(steps=4, baseline=np.zeros((8, 1))))
    assert good.explain(x).shape == x.shape


@pytest.mark.parametrize("value_range", [5, "01", ("a", "b"), (1, 0), (0, float("nan"))])
def test_smoothgrad_value_range_is_named(value_range):
    with pytest.raises(ValueError, match="Expected `value_range` to be \\(lo, hi\\)"):
        kd.methods.SmoothGrad(value_range=value_range)


@pytest.mark.parametrize("make", [kd.methods.SmoothGrad, kd.methods.RISE, kd.methods.KernelSHAP,
                                  lambda seed: kd.DecoyConfig(layer="conv", seed=seed)])
def test_seeds_are_checked_by_one_rule(make):
    for seed in (10**30, -1, "a", 1.0, True):
        with pytest.raises(ValueError, match="Expected `seed` to be an integer in \\[0, "):
            make(seed=seed)


def test_the_largest_seed_runs_and_equals_its_low_bits(model, x):
    # Only a seed's low 32 bits reach the counter-based streams.
    big = kd.Explainer(model, kd.methods.RISE(num_masks=8, cells=2, seed=2**63 - 1)).explain(x)
    low = kd.Explainer(model, kd.methods.RISE(num_masks=8, cells=2, seed=2**32 - 1)).explain(x)
    np.testing.assert_array_equal(big, low)


@pytest.mark.parametrize("method, error, message", [
    ({"name": []}, ValueError, "Expected `method` to be one of"),
    ({"name": 3}, ValueError, "Expected `method` to be one of"),
    ({"name": "smoothgrad", "config": "x"}, TypeError, "Expected `method\\['config'\\]`"),
])
def test_method_dicts_are_named(model, method, error, message):
    with pytest.raises(error, match=message):
        kd.Explainer(model, method=method)


def test_export_path_with_a_nul_byte_is_named(model, tmp_path):
    if keras.config.backend() == "torch":  # no SavedModel export from PyTorch at all
        error, message = NotImplementedError, "Expected a model on the TensorFlow or JAX"
    else:
        error, message = ValueError, "without NUL bytes"
    with pytest.raises(error, match=message):
        kd.Explainer(model).export(str(tmp_path / "a\0b"))
    assert list(tmp_path.iterdir()) == []


# What a fuzz of malformed calls found on one backend or another (issue 26).

def test_choices_given_as_arrays_are_named_not_numpys_truth_value_error(model, x):
    pair = np.array(["range", "mean"])
    with pytest.raises(ValueError, match="Expected `aggregation` to be one of"):
        kd.Explainer(model, aggregation=pair)
    with pytest.raises(ValueError, match="Expected `token_reduction` to be one of"):
        kd.Explainer(model, token_reduction=np.array(["mean", "sum"]))
    with pytest.raises(ValueError, match="Expected `mode`"):
        kd.sanity.model_randomisation(kd.Explainer(model), x, mode=np.array(["full", "x"]))
    with pytest.raises(ValueError, match="kind"):
        kd.DecoyConfig(layer="conv2", kind=np.array(["optimized"]))


def test_a_patch_given_as_a_numpy_scalar_is_that_int():
    assert kd.DecoyConfig("conv2", patch=np.array(8)).patch == 8
    assert kd.DecoyConfig("conv2", patch=np.int64(4), stride=np.array(2)).stride == 2
    for patch in (object(), np.array([[2, 2]]), np.array(0.5)):
        with pytest.raises(ValueError, match="Expected `patch` to be a positive int"):
            kd.DecoyConfig("conv2", patch=patch)


@pytest.mark.parametrize("metric", ["sparseness", "relevance_mass", "pointing_game"])
def test_map_metrics_name_an_empty_batch(metric):
    maps = np.ones((0, 8, 8, 1), np.float32)
    args = (maps,) if metric == "sparseness" else (maps, np.zeros((0, 8, 8), bool))
    with pytest.raises(ValueError, match="Expected non-empty `maps`. Received: maps.shape="):
        getattr(kd.metrics, metric)(*args)


def test_a_score_function_indexing_a_missing_class_is_refused(x):
    # JAX clamps out-of-range indices (class 2 would be explained): refused on every backend.
    model = small_conv_model(shape=(8, 8, 1), classes=3)
    with pytest.raises(ValueError, match="Expected `targets` to be a score function"):
        kd.Explainer(model).explain(x, lambda logits: logits[:, 7])
    # In range it works.
    assert kd.Explainer(model).explain(x, lambda logits: logits[:, 2]).shape == x.shape


def test_a_reversed_numpy_view_is_explained_like_its_copy(model, x):
    view = x[::-1]  # negative strides (PyTorch refused them)
    np.testing.assert_array_equal(kd.Explainer(model).explain(view, 1),
                                  kd.Explainer(model).explain(view.copy(), 1))
    reversed_ids = np.arange(12, dtype="int32").reshape(2, 6)[:, ::-1] % 10
    ids = keras.Input((6,), dtype="int32")
    h = keras.layers.Embedding(10, 4)(ids)
    text = keras.Model(ids, keras.layers.Dense(2)(keras.layers.Flatten()(h)))
    np.testing.assert_array_equal(kd.Explainer(text).explain(reversed_ids, 0),
                                  kd.Explainer(text).explain(reversed_ids.copy(), 0))


@pytest.mark.parametrize("method", ["gradient", "smoothgrad", "squaregrad", "vargrad",
                                    "integrated_gradients", "gradient_x_input"])
def test_a_variable_length_input_is_explained_like_a_fixed_one(method):
    # A Conv1D over any number of steps: the noise of SmoothGrad and its kin is drawn for
    # the batch's own length (TensorFlow failed with "Cannot convert a symbolic tf.Tensor").
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, 3))
    h = keras.layers.Conv1D(4, 3, padding="same", activation="tanh")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(h)))
    sequence = np.random.default_rng(0).uniform(size=(2, 5, 3)).astype(np.float32)
    config = {} if method in ("gradient", "gradient_x_input") else (
        {"steps": 4} if method == "integrated_gradients" else {"num_samples": 3})
    chosen = {"name": method, "config": config}
    maps = kd.Explainer(model, method=chosen).explain(sequence, 1)
    fixed = kd.Explainer(model, method=chosen, input_shape=(5, 3)).explain(sequence, 1)
    assert maps.shape == sequence.shape and np.abs(maps).max() > 0
    np.testing.assert_allclose(maps, fixed, rtol=1e-5, atol=1e-6)
