"""The Explainer: equivalences, compilation, inputs, targets, model hygiene, bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_unchanged, linear_model, small_conv_model, snapshot
from tf_keras_vis.saliency import Saliency
from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
from tf_keras_vis.utils.scores import CategoricalScore

import keras_dance as kd
from keras_dance._targets import IndexTargets

# Different chunkings sum the same float32 terms in a different order.
TOL = dict(rtol=1e-5, atol=1e-6)

METHODS = [
    "gradient", "gradient_x_input", "cgi",
    kd.methods.IntegratedGradients(steps=12),
    kd.methods.SmoothGrad(num_samples=6, seed=3),
    kd.methods.SmoothGrad(kd.methods.IntegratedGradients(steps=5), num_samples=3),
    kd.methods.Competitive(kd.methods.IntegratedGradients(steps=4)),
]


def _id(method):
    return method if isinstance(method, str) else repr(method)[:40]


@pytest.fixture
def x8():
    return np.random.default_rng(0).uniform(size=(7, 8, 8, 2)).astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS, ids=_id)
def test_batched_equals_unbatched(conv_model, x8, method):
    reference = np.concatenate(
        [kd.Explainer(conv_model, method, batch_size=1).explain(x8[i:i + 1]) for i in range(7)])
    for batch_size in (2, 7, 33, 10_000):
        maps = kd.Explainer(conv_model, method, batch_size=batch_size).explain(x8)
        np.testing.assert_allclose(maps, reference, **TOL, err_msg=f"batch_size={batch_size}")
    assert np.abs(reference).sum() > 0


@pytest.mark.parametrize("method", METHODS, ids=_id)
def test_compiled_equals_eager(conv_model, x8, method):
    explainer = kd.Explainer(conv_model, method, batch_size=16)
    targets = explainer.predict_classes(x8)
    compiled = explainer.explain(x8, targets)
    eager = explainer.method(tf.constant(x8), explainer._forward, IndexTargets(targets),
                             explainer.max_expansion).numpy()
    np.testing.assert_allclose(compiled, eager, **TOL)


def test_tracing_count_stays_at_one_across_batch_sizes(conv_model, rng):
    explainer = kd.Explainer(conv_model, kd.methods.SmoothGrad(num_samples=4), batch_size=8)
    for batch in (1, 3, 8, 13, 2):
        explainer.explain(rng.uniform(size=(batch, 8, 8, 2)).astype(np.float32))
    explainer.explain(rng.uniform(size=(4, 8, 8, 2)).astype(np.float32), targets=2)
    assert explainer.function.experimental_get_tracing_count() == 1


def test_gradient_equals_tf_keras_vis_saliency(digits_model, digits_samples):
    x, _ = digits_samples
    explainer = kd.Explainer(digits_model, "gradient")
    targets = explainer.predict_classes(x)
    ours = explainer.explain(x, targets)
    # tf-keras-vis 0.8.7 reads `output_names`, which Keras 3 gives Functional models only.
    functional = keras.Model(digits_model.inputs[0], digits_model.outputs[0])
    saliency = Saliency(functional, model_modifier=ReplaceToLinear(), clone=True)
    theirs = saliency(CategoricalScore(targets.tolist()), x, normalize_map=False,
                      keepdims=True, gradient_modifier=None)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    # And it is the gradient of the logits, not of the softmax probabilities.
    assert digits_model.layers[-1].activation is keras.activations.softmax


def test_scores_are_taken_on_logits_for_softmax_layers_and_sigmoid():
    w = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    x = np.random.default_rng(1).normal(size=(2, 5)).astype(np.float32)
    expected = np.tile(w[:, 2], (2, 1))
    for activation in ("softmax", "sigmoid"):
        model = linear_model(w, activation=activation)
        np.testing.assert_allclose(kd.Explainer(model).explain(x, 2), expected, **TOL)
    inputs = keras.Input((5,))
    logits = keras.layers.Dense(3, use_bias=False, name="linear")(inputs)
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    model.get_layer("linear").set_weights([w])
    np.testing.assert_allclose(kd.Explainer(model).explain(x, 2), expected, **TOL)


def test_explainer_follows_the_models_current_weights(conv_model, x8):
    explainer = kd.Explainer(conv_model, "gradient")
    before = explainer.explain(x8, 1)
    out = conv_model.get_layer("out")
    kernel, bias = out.get_weights()
    out.set_weights([kernel * 2, bias])
    np.testing.assert_allclose(explainer.explain(x8, 1), 2 * before, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", METHODS, ids=_id)
def test_model_is_unchanged(method, x8):
    model = small_conv_model()
    before = snapshot(model)
    explainer = kd.Explainer(model, method, batch_size=4)
    explainer.explain(x8)
    explainer.explain(x8, targets=np.arange(7) % 4)
    if not explainer.method.needs_class_indices:
        explainer.explain(x8, targets=lambda outputs: outputs[:, 0])
    else:
        with pytest.raises(ValueError, match="class-index `targets`"):
            explainer.explain(x8, targets=lambda outputs: outputs[:, 0])
    assert_unchanged(model, before)
    assert model.layers[-1].activation is keras.activations.softmax


def test_numpy_tensor_and_dataset_inputs_agree(conv_model, x8):
    explainer = kd.Explainer(conv_model, kd.methods.SmoothGrad(num_samples=3), batch_size=5)
    from_numpy = explainer.explain(x8)
    np.testing.assert_allclose(explainer.explain(tf.constant(x8)), from_numpy, **TOL)
    dataset = tf.data.Dataset.from_tensor_slices(x8).batch(3)
    np.testing.assert_allclose(explainer.explain(dataset), from_numpy, **TOL)
    labelled = tf.data.Dataset.from_tensor_slices((x8, np.zeros(7))).batch(4)
    np.testing.assert_allclose(explainer.explain(labelled), from_numpy, **TOL)
    assert from_numpy.dtype == np.float32 and from_numpy.shape == x8.shape


def test_targets_int_array_and_callables_agree(conv_model, x8):
    explainer = kd.Explainer(conv_model, "gradient_x_input")
    targets = np.array([0, 1, 2, 3, 0, 1, 2])
    by_index = explainer.explain(x8, targets)
    by_score = explainer.explain(x8, CategoricalScore(targets.tolist()))
    np.testing.assert_allclose(by_score, by_index, **TOL)
    np.testing.assert_allclose(
        explainer.explain(x8, lambda outputs: outputs[:, 3]), explainer.explain(x8, 3), **TOL)
    predicted = explainer.predict_classes(x8)
    np.testing.assert_allclose(explainer.explain(x8), explainer.explain(x8, predicted), **TOL)


def test_callable_targets_compose_with_expanding_methods(conv_model, x8):
    method = kd.methods.SmoothGrad(kd.methods.IntegratedGradients(steps=3), num_samples=4)
    explainer = kd.Explainer(conv_model, method, batch_size=6)
    targets = np.array([0, 1, 2, 3, 0, 1, 2])
    np.testing.assert_allclose(explainer.explain(x8, CategoricalScore(targets.tolist())),
                               explainer.explain(x8, targets), **TOL)


def test_regression_and_multi_output_models_need_a_score_function(rng):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, [keras.layers.Dense(1, name="a")(inputs),
                                 keras.layers.Dense(2, name="b")(inputs)])
    x = rng.normal(size=(3, 4)).astype(np.float32)
    explainer = kd.Explainer(model)
    with pytest.raises(ValueError, match="targets"):
        explainer.explain(x)
    w_a, b_a = model.get_layer("a").get_weights()
    maps = explainer.explain(x, lambda outputs: outputs[0][:, 0])
    np.testing.assert_allclose(maps, np.tile(w_a[:, 0], (3, 1)), **TOL)


@pytest.mark.parametrize("x, error, message", [
    (np.full((2, 8, 8, 2), np.nan, np.float32), ValueError, "finite"),
    (np.full((2, 8, 8, 2), np.inf, np.float32), ValueError, "finite"),
    (np.zeros((8, 8, 2), np.float32), ValueError, "rank 4"),
    (np.zeros((2, 8, 9, 2), np.float32), ValueError, "shape"),
    (np.zeros((0, 8, 8, 2), np.float32), ValueError, "non-empty"),
    (np.full((2, 8, 8, 2), "a"), TypeError, "numeric dtype"),
    (np.zeros((2, 8, 8, 2), bool), TypeError, "numeric dtype"),
])
def test_bad_inputs_raise_naming_x(conv_model, x, error, message):
    with pytest.raises(error, match=message) as info:
        kd.Explainer(conv_model).explain(x)
    assert "Received: x" in str(info.value)


@pytest.mark.parametrize("targets, error, message", [
    (4, ValueError, r"targets` in \[0, 4\)"),
    (-1, ValueError, r"targets` in \[0, 4\)"),
    (np.array([0, 1]), ValueError, r"shape \(3,\)"),
    (np.array([0.5, 1, 1]), TypeError, "targets"),
    ("cat", TypeError, "targets"),
])
def test_bad_targets(conv_model, targets, error, message):
    x = np.zeros((3, 8, 8, 2), np.float32)
    with pytest.raises(error, match=message):
        kd.Explainer(conv_model).explain(x, targets)


def test_bad_explainer_arguments(conv_model):
    with pytest.raises(ValueError, match=r"one of \[.*'cgi'.*'gradient'.*\].*Received: method='sal'"):
        kd.Explainer(conv_model, method="sal")
    with pytest.raises(ValueError, match="batch_size"):
        kd.Explainer(conv_model, batch_size=0)
    with pytest.raises(TypeError, match="model"):
        kd.Explainer("model.keras")
    with pytest.raises(TypeError, match="jit_compile"):
        kd.Explainer(conv_model, jit_compile="yes")


def test_other_backends_are_refused(monkeypatch, conv_model):
    # JAX and PyTorch are served (tests/test_backends.py); Keras's OpenVINO backend is not
    # (inference only: no gradients).
    monkeypatch.setattr(keras.backend, "backend", lambda: "openvino")
    with pytest.raises(RuntimeError, match="Expected the Keras backend 'tensorflow'.*'openvino'"):
        kd.Explainer(conv_model)


def test_memory_knob_sets_the_passes(conv_model):
    explainer = kd.Explainer(conv_model, kd.methods.SmoothGrad(num_samples=50), batch_size=64)
    assert explainer.inputs_per_pass == 1 and explainer.max_expansion == 64
    explainer = kd.Explainer(conv_model, "cgi", batch_size=64)  # 4 classes
    assert explainer.inputs_per_pass == 16 and explainer.max_expansion == 4


def test_xla_matches_the_graph(conv_model, x8):
    method = kd.methods.SmoothGrad(kd.methods.IntegratedGradients(steps=4), num_samples=3)
    graph = kd.Explainer(conv_model, method, batch_size=5).explain(x8)
    xla = kd.Explainer(conv_model, method, batch_size=5, jit_compile=True).explain(x8)
    # XLA fuses and reorders float32 arithmetic.
    np.testing.assert_allclose(xla, graph, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("outer", ["sequential", "functional"])
def test_scores_are_logits_when_the_softmax_sits_in_a_nested_head(outer):
    keras.utils.set_random_seed(0)
    base = keras.Sequential([keras.Input((8, 8, 2)), keras.layers.Conv2D(3, 3, activation="relu")],
                            name="base")
    head = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(4, activation="tanh"),
                             keras.layers.Dense(3, activation="softmax", name="probs")],
                            name="head")
    if outer == "sequential":
        model = keras.Sequential([keras.Input((8, 8, 2)), base, head])
    else:
        inputs = keras.Input((8, 8, 2))
        model = keras.Model(inputs, head(base(inputs)))
    before = snapshot(model)
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 2)).astype(np.float32)
    explainer = kd.Explainer(model)
    assert explainer._logits.replaced == ["head/probs"]
    maps = explainer.explain(x, targets=1)
    tensor = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        hidden = head.layers[1](head.layers[0](base(tensor)))
        probs = head.get_layer("probs")
        score = tf.reduce_sum((tf.matmul(hidden, probs.kernel) + probs.bias)[:, 1])
    np.testing.assert_allclose(maps, tape.gradient(score, tensor).numpy(), rtol=1e-5, atol=1e-7)
    assert_unchanged(model, before)
    assert head.get_layer("probs").activation is keras.activations.softmax


def test_score_functions_are_checked_before_any_map(conv_model, x8):
    import dataclasses

    explainer = kd.Explainer(conv_model)
    cases = [
        (lambda o: o[0, 0], ValueError, r"one score per input, shape \(7,\).*shape \(\)"),
        (lambda o: 1.0, ValueError, "one score per input"),
        (lambda o: o[:2, 0] + 0.0, ValueError, r"shape \(7,\) for 7 inputs.*\(2,\)"),
        (lambda o: tf.ones([7]), ValueError, "do not depend on them"),
        (lambda o: tf.cast(o[:, 0], tf.int32), TypeError, "integer scores have no gradient"),
        (lambda o: None, TypeError, "it returned None"),
        (lambda o: "score", TypeError, "it returned 'score'"),
    ]
    for fn, error, message in cases:
        with pytest.raises(error, match=message):
            explainer.explain(x8, targets=fn)

    @dataclasses.dataclass
    class ClassScore:  # unhashable (eq=True without frozen): keyed by identity
        index: int

        def __call__(self, outputs):
            return outputs[:, self.index]

    np.testing.assert_allclose(explainer.explain(x8, targets=ClassScore(2)),
                               explainer.explain(x8, targets=2), rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match=r"Expected `batch_size` to be an integer in \[1, "):
        kd.Explainer(conv_model, batch_size=2**31)
    for name in ("steps", "patience", "seed"):
        with pytest.raises(ValueError, match=f"Expected `{name}` to be an integer in"):
            kd.DecoyConfig(layer="conv2", **{name: 2**64})
    with pytest.raises(ValueError, match="num_samples"):
        kd.methods.SmoothGrad(num_samples=2**31)


def _segmentation_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 2))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c")(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(3, 1, activation="softmax", name="seg")(h))


@pytest.mark.filterwarnings("ignore:The decoy range map is identically zero")
def test_outputs_with_positions_average_the_class_logit_or_a_region():
    model = _segmentation_model()
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 2)).astype(np.float32)
    explainer = kd.Explainer(model)
    mask = np.zeros((2, 8, 8), bool)
    mask[0, 1:3, 2:5] = True
    mask[1, 6:, :] = True
    tensor = tf.constant(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(tensor)
        logits = explainer._logits(tensor)  # the 1×1 convolution without its softmax
        mean = tf.reduce_mean(logits, axis=[1, 2])
        whole = tf.reduce_sum(mean[:, 2])
        region = tf.reduce_sum(tf.reduce_sum(logits[..., 1] * mask, axis=[1, 2])
                               / mask.sum(axis=(1, 2)))
    predicted = np.argmax(mean.numpy(), axis=-1)
    maps, details = explainer.explain(x, return_details=True)
    np.testing.assert_array_equal(details["targets"], predicted)
    np.testing.assert_allclose(explainer.explain(x, targets=2), tape.gradient(whole, tensor),
                               rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(explainer.explain(x, targets=(1, mask)),
                               tape.gradient(region, tensor), rtol=1e-5, atol=1e-8)
    assert not np.allclose(explainer.explain(x, targets=(1, mask)),
                           explainer.explain(x, targets=1))
    with pytest.raises(ValueError, match=r"region `mask` of shape \(8, 8\)"):
        explainer.explain(x, targets=(1, np.ones((4, 4), bool)))
    with pytest.raises(ValueError, match="non-empty region"):
        explainer.explain(x, targets=(1, np.zeros((8, 8), bool)))
    with pytest.raises(ValueError, match=r"only for a model whose output has positions"):
        kd.Explainer(small_conv_model()).explain(x[..., :2][:, :8, :8], targets=(1, mask))
    dance = kd.Explainer(model, decoys=kd.DecoyConfig(layer="c", patch=4, steps=3))
    assert np.all(np.isfinite(dance.explain(x, targets=(0, mask[0]))))
