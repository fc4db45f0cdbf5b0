"""The models users bring: keras.applications DAGs, nested transfer models, subclassed
models, preprocessing, integer inputs (weights=None: nothing is downloaded)."""

import io
import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_unchanged, snapshot

import keras_dance as kd
from keras_dance.decoys import masks as masks_lib

L = keras.layers


def _transfer_model(shape=(64, 64, 3), classes=3):
    """The usual fine-tuning pattern: a base model used as a layer, then a new head."""
    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(input_shape=shape, weights=None, include_top=False)
    inputs = keras.Input(shape)
    h = L.GlobalAveragePooling2D()(base(inputs))
    return keras.Model(inputs, L.Dense(classes, activation="softmax")(h)), base


def _application(name):
    keras.utils.set_random_seed(0)
    if name == "resnet50":
        model = keras.applications.ResNet50(input_shape=(64, 64, 3), weights=None, classes=3)
        return model, "conv2_block1_out", model
    if name == "mobilenetv2":
        model = keras.applications.MobileNetV2(input_shape=(64, 64, 3), weights=None,
                                               classes=3)
        return model, "block_2_add", model
    if name == "densenet121":
        model = keras.applications.DenseNet121(input_shape=(64, 64, 3), weights=None,
                                               classes=3)
        return model, "conv2_block1_concat", model
    model, base = _transfer_model()
    return model, "block_2_add", base


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "mobilenetv2", "densenet121", "nested"])
def test_decoy_constraint_holds_on_application_graphs_with_cropping(name):
    model, layer, owner = _application(name)
    before = snapshot(model)
    config = kd.DecoyConfig(layer=layer, patch=16, steps=6, patience=0, epsilon=0.2)
    explainer = kd.Explainer(model, decoys=config, batch_size=64)
    engine = explainer.decoys
    # Cropping is used on these DAGs (residual adds, concatenations, depthwise convs).
    assert engine.cropping, engine.reason
    assert engine.crop_plan.fraction < 1.0 and "verified exact" in engine.reason
    x = np.random.default_rng(1).uniform(size=(1, 64, 64, 3)).astype(np.float32)
    decoys, feasible = explainer.generate_decoys(x)
    # Reference F_l from Keras itself (not our graph interpreter): the owner's own graph.
    reference = keras.Model(owner.inputs[0], owner.get_layer(layer).output)
    base = reference(x).numpy()
    epsilon = config.epsilon * np.abs(base).max()
    change = np.abs(reference(decoys[0]).numpy() - base).reshape(len(decoys[0]), -1).max(1)
    # Within ε up to float32 convolution-order noise (1e-5 relative).
    assert np.all(change[feasible[0]] <= epsilon * (1 + 1e-5) + 1e-6), change.max() / epsilon
    assert feasible.mean() > 0.9
    masks = masks_lib.patch_masks(engine.spatial_shape, engine.starts, engine.patch)
    for j in range(engine.num_decoys):
        outside = ~np.broadcast_to(masks[j // 2][..., None], x.shape[1:])
        np.testing.assert_array_equal(decoys[0, j][outside], x[0][outside])
    assert np.abs(decoys - x[:, None]).max() > 0.05  # the problems are not trivial
    if name == "nested":  # whole maps once (tracing a full application graph costs ~15 s)
        maps = explainer.explain(x)
        assert maps.shape == x.shape and np.all(np.isfinite(maps)) and np.abs(maps).max() > 0
    assert_unchanged(model, before)


def test_the_crop_probe_rejects_a_graph_where_a_crop_would_be_wrong():
    class LeakyConv(L.Conv2D):
        """Looks local to the layer table (a Conv2D) but adds a global mean."""

        def call(self, inputs):
            return super().call(inputs) + keras.ops.mean(inputs, axis=(1, 2, 3),
                                                          keepdims=True)

    keras.utils.set_random_seed(0)
    inputs = keras.Input((24, 24, 2))
    h = L.Conv2D(3, 3, padding="same")(inputs)
    h = LeakyConv(3, 3, padding="same", name="l")(h)
    model = keras.Model(inputs, L.Dense(2)(L.Flatten()(h)))
    engine = kd.Explainer(model, decoys=kd.DecoyConfig(layer="l", patch=3)).decoys
    assert not engine.cropping
    assert engine.reason.startswith("crop check failed"), engine.reason


def test_genuinely_global_parts_fall_back_naming_the_layer():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((24, 24, 3))
    h = L.Conv2D(4, 3, padding="same")(inputs)
    squeeze = L.Dense(4, activation="sigmoid")(L.GlobalAveragePooling2D(name="se_pool")(h))
    h = L.Multiply(name="l")([h, L.Reshape((1, 1, 4))(squeeze)])
    model = keras.Model(inputs, L.Dense(2)(L.Flatten()(h)))
    engine = kd.Explainer(model, decoys=kd.DecoyConfig(layer="l", patch=4)).decoys
    assert not engine.cropping and "'se_pool'" in engine.reason, engine.reason


def _two_bases():
    def base(name):
        inputs = keras.Input((16, 16, 3))
        h = L.Conv2D(4, 3, padding="same", name="conv")(inputs)
        return keras.Model(inputs, L.ReLU(name="act")(h), name=name)

    keras.utils.set_random_seed(0)
    left, right = base("left"), base("right")
    inputs = keras.Input((16, 16, 3))
    h = L.Concatenate(name="both")([left(inputs), right(inputs)])
    return keras.Model(inputs, L.Dense(2)(L.Flatten()(h))), left, right


def test_nested_layers_by_name_path_object_and_errors():
    model, base = _transfer_model(shape=(32, 32, 3))
    target = base.get_layer("block_2_add")
    nodes = len(target._inbound_nodes)
    names = set()
    for layer in ("block_2_add", "mobilenetv2_1.00_32/block_2_add", target):
        engine = kd.Explainer(model, decoys=kd.DecoyConfig(layer=layer, patch=8)).decoys
        names.add(engine.layer_name)
    assert names == {"mobilenetv2_1.00_32/block_2_add"}
    assert len(target._inbound_nodes) == nodes  # the user's layers gained no node
    engine = kd.Explainer(model, decoys=kd.DecoyConfig(layer=-1, patch=8)).decoys
    assert engine.layer_name == model.layers[-1].name

    two, left, _ = _two_bases()
    with pytest.raises(ValueError, match=r"2 match: left/conv, right/conv.*full path.*"
                                         r"Received: layer='conv'"):
        kd.Explainer(two, decoys=kd.DecoyConfig(layer="conv", patch=4))
    engine = kd.Explainer(two, decoys=kd.DecoyConfig(layer="right/conv", patch=4)).decoys
    x = np.random.default_rng(0).uniform(size=(2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(engine.sub_model(x).numpy(),
                               two.get_layer("right").get_layer("conv")(x).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match=r"in call order: .*left/conv, left/act.*right/act"
                                         r".*Received: layer='nope'"):
        kd.Explainer(two, decoys=kd.DecoyConfig(layer="nope", patch=4))
    with pytest.raises(ValueError, match="Received: the layer object 'stranger'"):
        kd.Explainer(two, decoys=kd.DecoyConfig(layer=L.ReLU(name="stranger"), patch=4))
    with pytest.raises(ValueError, match=r"index in \[-6, 6\)"):
        kd.Explainer(two, decoys=kd.DecoyConfig(layer=9, patch=4))
    with pytest.raises(ValueError, match="path 'outer/inner'"):
        kd.DecoyConfig(layer="left//conv")


class SubclassedNet(keras.Model):
    """A subclassed classifier (no functional graph, no `inputs`)."""

    def __init__(self, softmax=False):
        super().__init__()
        self.conv = L.Conv2D(4, 3, activation="tanh")
        self.flat = L.Flatten()
        self.dense = L.Dense(3)
        self.softmax = softmax

    def features(self, x):
        return self.conv(x)

    def call(self, x):
        logits = self.dense(self.flat(self.conv(x)))
        return keras.ops.softmax(logits) if self.softmax else logits


@pytest.mark.slow
def test_subclassed_models_plain_methods_and_dance():
    keras.utils.set_random_seed(0)
    net = SubclassedNet()
    x = np.random.default_rng(0).uniform(size=(3, 10, 10, 2)).astype(np.float32)
    net(x)
    with pytest.raises(ValueError, match=r"Expected `input_shape`.*Received: input_shape=None"):
        kd.Explainer(net)
    explainer = kd.Explainer(net, input_shape=(10, 10, 2))
    maps = explainer.explain(x, targets=np.array([0, 1, 2]))
    tensor = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        logits = net(tensor)
        score = tf.reduce_sum(tf.gather(logits, [0, 1, 2], axis=1, batch_dims=0) * np.eye(3))
    np.testing.assert_allclose(maps, tape.gradient(score, tensor).numpy(), atol=1e-6)
    for method in ("gradient_x_input", "integrated_gradients", "smoothgrad", "cgi"):
        assert np.all(np.isfinite(kd.Explainer(net, method, input_shape=(10, 10, 2))
                                  .explain(x[:1])))
    with pytest.raises(ValueError, match=r"callable `x -> F_l\(x\)` for a model without a "
                                         r"functional graph"):
        kd.Explainer(net, decoys=kd.DecoyConfig(layer="conv"), input_shape=(10, 10, 2))
    dance = kd.Explainer(net, decoys=kd.DecoyConfig(layer=net.features, patch=5, steps=4),
                         input_shape=(10, 10, 2))
    assert not dance.decoys.cropping and "callable" in dance.decoys.reason
    decoys, feasible = dance.generate_decoys(x[:1])
    base = net.features(x[:1]).numpy()
    change = np.abs(net.features(decoys[0]).numpy() - base).reshape(len(decoys[0]), -1).max(1)
    assert np.all(change[feasible[0]] <= 0.1 * np.abs(base).max() * (1 + 1e-5))
    assert dance.explain(x[:1]).shape == (1, 10, 10, 2)
    probabilities = SubclassedNet(softmax=True)
    probabilities(x)
    with pytest.raises(ValueError, match="returns logits"):
        kd.Explainer(probabilities, input_shape=(10, 10, 2))


def _gap_model(shape=(16, 16, 3)):
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape)
    h = L.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inputs)
    h = L.Conv2D(4, 3, padding="same", activation="relu", name="conv2")(h)
    return keras.Model(inputs, L.Dense(3, activation="softmax")(L.GlobalAveragePooling2D()(h)))


@pytest.mark.slow
def test_preprocess_maps_are_gradients_with_respect_to_raw_inputs(tmp_path):
    model = _gap_model()
    preprocess = keras.applications.resnet50.preprocess_input  # caffe: BGR, mean-centred
    x = np.random.default_rng(0).uniform(0, 255, size=(2, 16, 16, 3)).astype(np.float32)
    explainer = kd.Explainer(model, preprocess=preprocess)
    maps, details = explainer.explain(x, return_details=True)
    logits = kd.Explainer(model)._logits
    raw = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(raw)
        out = logits(preprocess(raw))
        score = tf.reduce_sum(tf.gather(out, details["targets"], axis=1, batch_dims=1))
    expected = tape.gradient(score, raw).numpy()
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-7)
    # The map differs from the gradient with respect to the preprocessed input.
    assert not np.allclose(maps, kd.Explainer(model).explain(preprocess(raw), details["targets"]),
                           atol=1e-6)
    np.testing.assert_array_equal(explainer.predict_classes(x), details["targets"])

    dance = kd.Explainer(model, preprocess=preprocess, decoys=kd.DecoyConfig(
        layer="conv2", patch=4, steps=4, value_range=(0, 255)))
    assert dance.decoys.cropping, dance.decoys.reason
    dance_maps = dance.explain(x)
    path = dance.export(tmp_path / "serving" / "1")
    loaded = tf.saved_model.load(str(path))
    served = loaded.signatures["explain"](inputs=tf.constant(x))
    np.testing.assert_allclose(served["saliency"].numpy(), dance_maps, rtol=1e-4, atol=1e-6)
    predictions = loaded.signatures["serving_default"](inputs=tf.constant(x))["predictions"]
    np.testing.assert_allclose(predictions.numpy(), model(preprocess(raw)).numpy(), rtol=1e-5)
    with pytest.raises(TypeError, match="Expected `preprocess` to be a callable"):
        kd.Explainer(model, preprocess="caffe")


def test_models_that_cannot_be_differentiated_raise_instead_of_zero_maps():
    # Token ids through an Embedding (int32 or float inputs) are explained per token at
    # the embedding (tests/test_text.py); without an Embedding, integer inputs raise.
    for dtype in ("int32", "float32"):
        inputs = keras.Input((12,), dtype=dtype)
        h = L.Embedding(50, 4)(keras.ops.cast(inputs, "int32"))
        model = keras.Model(inputs, L.Dense(2)(L.Flatten()(h)))
        maps = kd.Explainer(model).explain(np.arange(24).reshape(2, 12) % 50)
        assert maps.shape == (2, 12) and np.abs(maps).max() > 0
    inputs = keras.Input((12,), dtype="int32")
    model = keras.Model(inputs, L.Dense(2)(keras.ops.cast(inputs, "float32")))
    with pytest.raises(ValueError, match=r"no Embedding layer.*dtype int32"):
        kd.Explainer(model)
    inputs = keras.Input((12,))
    cut = keras.ops.cast(keras.ops.cast(inputs, "int32"), "float32")
    model = keras.Model(inputs, L.Dense(2)(cut))
    with pytest.raises(ValueError, match="gradient is None"):
        kd.Explainer(model)


def test_describe_reports_the_cost_and_verbose_shows_progress():
    model = _gap_model((24, 24, 3))
    explainer = kd.Explainer(model, decoys=kd.DecoyConfig(layer="conv2", patch=6, steps=3),
                             batch_size=32)
    text = explainer.decoys.describe()
    assert "16 patches" in text and "32 decoys per input" in text and "3 solver steps" in text
    fraction = explainer.decoys.crop_plan.fraction
    assert f"{32 * 3 * fraction:,.0f} full-input F_l passes" in text
    x = np.random.default_rng(0).uniform(size=(3, 24, 24, 3)).astype(np.float32)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        verbose = explainer.explain(x, verbose=1)
    assert "3/3" in out.getvalue()
    np.testing.assert_allclose(verbose, explainer.explain(x), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="Expected `verbose` to be 0 or 1"):
        explainer.explain(x, verbose=2)


@pytest.mark.slow
def test_mixed_precision_models_give_float32_maps_and_valid_decoys():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        inputs = keras.Input((16, 16, 3))
        h = L.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inputs)
        h = L.Conv2D(4, 3, padding="same", activation="relu", name="c2")(h)
        logits = L.Dense(3)(L.GlobalAveragePooling2D()(h))  # float16 logits
        model = keras.Model(inputs, logits)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    x = np.random.default_rng(0).uniform(size=(2, 16, 16, 3)).astype(np.float32)
    for method in ("gradient_x_input", "integrated_gradients", "smoothgrad", "cgi"):
        other = kd.Explainer(model, method).explain(x)
        assert other.dtype == np.float32 and np.all(np.isfinite(other)), method
    maps = kd.Explainer(model).explain(x, targets=1)
    tensor = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        score = tf.reduce_sum(tf.cast(model(tensor), tf.float32)[:, 1])
    assert maps.dtype == np.float32
    np.testing.assert_allclose(maps, tape.gradient(score, tensor).numpy(), rtol=1e-6, atol=0)
    explainer = kd.Explainer(model, decoys=kd.DecoyConfig(layer="c2", patch=4, steps=5))
    decoys, feasible = explainer.generate_decoys(x[:1])
    sub = keras.Model(model.inputs[0], model.get_layer("c2").output)
    base = tf.cast(sub(x[:1]), tf.float32).numpy()
    change = np.abs(tf.cast(sub(decoys[0]), tf.float32).numpy() - base)
    change = change.reshape(len(decoys[0]), -1).max(1)
    # float16 activations: the constraint holds up to float16 rounding of the layer (1e-3).
    assert np.all(change[feasible[0]] <= 0.1 * np.abs(base).max() * (1 + 1e-3) + 1e-3)
    assert np.all(np.isfinite(explainer.explain(x)))


def test_variable_length_inputs_explain_and_refuse_decoys_clearly():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, 3))
    h = L.Conv1D(4, 3, padding="same", activation="relu", name="c")(inputs)
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling1D()(h)))
    explainer = kd.Explainer(model)
    for length in (5, 9):
        x = np.random.default_rng(length).uniform(size=(2, length, 3)).astype(np.float32)
        assert explainer.explain(x, targets=1).shape == x.shape
    with pytest.raises(ValueError, match="fully known input shape for decoys"):
        kd.Explainer(model, decoys=kd.DecoyConfig(layer="c"))
    dance = kd.Explainer(model, decoys=kd.DecoyConfig(layer="c", patch=2, steps=3),
                         input_shape=(8, 3))
    assert dance.explain(np.full((1, 8, 3), 0.5, np.float32)).shape == (1, 8, 3)
