"""The CAM family against tf-keras-vis on the same model and layer, and everywhere a
method goes (Explainer, memory knob, export, DANCE, errors)."""

import keras
import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf
from tf_keras_vis.gradcam import Gradcam
from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
from tf_keras_vis.layercam import Layercam
from tf_keras_vis.scorecam import Scorecam
from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
from tf_keras_vis.utils.scores import CategoricalScore

import keras_dance as kd
from helpers import block_models
from keras_dance.methods.cam import upsample

PEERS = {"gradcam": Gradcam, "gradcam_plus_plus": GradcamPlusPlus, "layercam": Layercam,
         "scorecam": Scorecam}


@pytest.fixture(scope="module")
def digits():
    sequential = kd.datasets.load_digits_model()
    # tf-keras-vis's ReplaceToLinear reads `output_names`, which Keras 3 Sequential lacks:
    # the same layers as a functional model.
    functional = keras.Model(sequential.inputs, sequential.outputs)
    x = kd.datasets.load_digits()[2][:6]
    return functional, x


def _normalised(maps):
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    return (maps - low) / (high - low + keras.backend.epsilon())


@pytest.mark.parametrize("name", sorted(set(PEERS) - {"gradcam_plus_plus"}))
def test_cam_family_equals_tf_keras_vis(digits, name):
    model, x = digits
    explainer = kd.Explainer(model, method={"name": name, "config": {"layer": "conv3"}})
    maps = explainer.explain(x)
    assert maps.shape == x.shape and maps.dtype == np.float32
    classes = explainer.predict_classes(x)
    peer = PEERS[name](model, model_modifier=ReplaceToLinear(), clone=True)
    theirs = peer(CategoricalScore(classes.tolist()), x, penultimate_layer="conv3",
                  seek_penultimate_conv_layer=False, normalize_cam=False)
    ours = maps[..., 0]
    scale = np.abs(theirs).max()
    np.testing.assert_allclose(ours, theirs, atol=1e-5 * max(1.0, scale))
    assert np.all(maps >= 0) and np.ptp(maps) > 0


def _copy_in(model, policy):
    """``model``'s layers and weights under another dtype policy."""
    def clone(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": policy})

    dtype = "float64" if policy == "float64" else "float32"
    inputs = keras.Input(model.inputs[0].shape[1:], dtype=dtype)
    copy = keras.models.clone_model(model, input_tensors=[inputs], clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


@pytest.mark.parametrize("policy", ["mixed_float16", "float64"])
def test_cam_family_on_mixed_precision_and_float64_models(digits, policy):
    """The layer's gradient is taken at the layer's own output, in its dtype (it used to
    be taken at a float32 cast of it, unconnected: an AttributeError on such models)."""
    model, x = digits
    copy = _copy_in(model, policy)
    for name in ("gradcam", "gradcam_plus_plus", "layercam", "scorecam"):
        method = {"name": name, "config": {"layer": "conv3"}}
        reference = kd.Explainer(model, method=method).explain(x)
        maps = kd.Explainer(copy, method=method).explain(x)
        assert maps.dtype == np.float32 and np.ptp(maps) > 0, name
        assert np.all(np.isfinite(maps)) and np.all(maps >= 0), name
        if policy == "mixed_float16" and name == "gradcam_plus_plus":
            continue  # α's conditioning (see below) times float16's 1e-3: ~20% apart
        # float16 activations and gradients: a few parts in a thousand of the map.
        tolerance = 1e-2 if policy == "mixed_float16" else 1e-4
        np.testing.assert_allclose(maps, reference, atol=tolerance * np.abs(reference).max(),
                                   err_msg=name)


def test_gradcam_plus_plus_is_as_exact_as_tf_keras_vis(digits):
    """GradCAM++'s α = 1 / (2 + g Σ_p A) is ill-conditioned where g Σ_p A nears -2: on
    these digits, rounding float64 gradients to float32 alone moves the normalised map by
    ~3e-5, and ours and tf-keras-vis's float32 maps sit ~1.3e-4 from the exact map on one
    image (and differ from each other by up to 1.4e-5 from run to run, as the two paths'
    last bits of g differ). So both are compared with the exact map: tf-keras-vis's own
    formula on a float64 copy of the model. Ours must be as close to it as tf-keras-vis
    is (within float32 noise), image by image."""
    model, x = digits
    explainer = kd.Explainer(model, method={"name": "gradcam_plus_plus",
                                            "config": {"layer": "conv3"}})
    maps = explainer.explain(x)
    assert maps.shape == x.shape and maps.dtype == np.float32
    assert np.all(maps >= 0) and np.ptp(maps) > 0
    classes = explainer.predict_classes(x)
    score = CategoricalScore(classes.tolist())
    options = dict(penultimate_layer="conv3", seek_penultimate_conv_layer=False,
                   normalize_cam=True)  # tf-keras-vis scales by exp(score): normalised
    theirs = GradcamPlusPlus(model, model_modifier=ReplaceToLinear(), clone=True)(
        score, x, **options)
    exact = GradcamPlusPlus(_copy_in(model, "float64"), model_modifier=ReplaceToLinear(),
                            clone=True)(score, x.astype(np.float64), **options)
    ours = _normalised(maps[..., 0])
    their_error = np.abs(theirs - exact).max(axis=(1, 2))
    our_error = np.abs(ours - exact).max(axis=(1, 2))
    assert np.all(our_error <= 2 * their_error + 1e-5), (our_error, their_error)
    # Where the quantity is well conditioned, the three agree closely.
    assert np.median(our_error) < 1e-5, our_error


def test_gradcam_plus_plus_is_tf_keras_vis_over_exp_score(digits):
    model, x = digits
    explainer = kd.Explainer(model, method=kd.methods.GradCAMPlusPlus(layer="conv3"))
    classes = explainer.predict_classes(x)
    copy = keras.models.clone_model(model)  # the logits: the softmax taken off a copy
    copy.set_weights(model.get_weights())
    copy.layers[-1].activation = keras.activations.linear
    scores = copy(x).numpy()[np.arange(len(x)), classes]
    theirs = GradcamPlusPlus(model, model_modifier=ReplaceToLinear(), clone=True)(
        CategoricalScore(classes.tolist()), x, penultimate_layer="conv3",
        seek_penultimate_conv_layer=False, normalize_cam=False)
    ours = explainer.explain(x)[..., 0]
    np.testing.assert_allclose(ours * np.exp(scores)[:, None, None], theirs, rtol=1e-4,
                               atol=1e-5 * np.abs(theirs).max())


def test_scorecam_channel_cap_and_memory_knob(digits):
    model, x = digits
    capped = kd.methods.ScoreCAM(layer="conv3", max_channels=5)
    small = kd.Explainer(model, method=capped, batch_size=1).explain(x)
    large = kd.Explainer(model, method=capped, batch_size=1000).explain(x)
    np.testing.assert_allclose(small, large, rtol=1e-5, atol=1e-6)
    # One input at a time, tf-keras-vis's batch-wide choice is the per-input one.
    classes = kd.Explainer(model).predict_classes(x)
    peer = Scorecam(model, model_modifier=ReplaceToLinear(), clone=True)
    for i in range(2):
        theirs = peer(CategoricalScore([int(classes[i])]), x[i:i + 1], penultimate_layer="conv3",
                      seek_penultimate_conv_layer=False, normalize_cam=False, max_N=5)
        np.testing.assert_allclose(small[i:i + 1, ..., 0], theirs,
                                   atol=1e-5 * max(1.0, np.abs(theirs).max()))
    full = kd.Explainer(model, method=kd.methods.ScoreCAM(layer="conv3")).explain(x)
    assert not np.allclose(full, small)  # the cap changes the map


@pytest.mark.parametrize("shape", [(3, 4), (5, 5), (7,), (1, 6)])
def test_upsampling_is_scipy_zoom_order_1(shape):
    rng = np.random.default_rng(0)
    cam = rng.normal(size=(2,) + shape).astype(np.float32)
    target = tuple(4 * n + 1 for n in shape)
    ours = upsample(tf.constant(cam), target).numpy()
    factors = (1,) + tuple(t / n for t, n in zip(target, shape))
    np.testing.assert_allclose(ours, scipy.ndimage.zoom(cam, factors, order=1), atol=1e-5)


def test_default_layer_is_the_last_with_positions():
    digits = kd.Explainer(kd.datasets.load_digits_model(), method="gradcam")
    assert kd.methods.GradCAM().layer_function(digits._forward).layer_name == "pool3"
    resnet = kd.datasets.load_model("configurations_resnet")
    explainer = kd.Explainer(resnet, method="gradcam")
    name = kd.methods.GradCAM().layer_function(explainer._forward).layer_name
    layer = resnet.get_layer(name.split("/")[-1])
    assert len(layer.output.shape) == 4 and layer.output.shape[1] > 1
    # nothing after it keeps positions: the next layers pool them away
    later = resnet.layers[resnet.layers.index(layer) + 1:]
    assert all(len(item.output.shape) < 4 or item.output.shape[1] == 1 for item in later)
    x = kd.datasets.make_configurations(2)[0]
    assert explainer.explain(x).shape == x.shape


def test_a_layer_inside_a_nested_base_model():
    keras.utils.set_random_seed(0)
    base = keras.Sequential([keras.Input((12, 12, 3)),
                             keras.layers.Conv2D(4, 3, activation="relu", name="inner_conv"),
                             keras.layers.Conv2D(5, 3, activation="relu", name="last_conv")],
                            name="base")
    inputs = keras.Input((12, 12, 3))
    h = keras.layers.GlobalAveragePooling2D()(base(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(h))
    x = np.random.default_rng(0).uniform(size=(3, 12, 12, 3)).astype(np.float32)
    explainer = kd.Explainer(model, method=kd.methods.GradCAM(layer="base/last_conv"))
    assert explainer._forward.layer_forward("base/last_conv").layer_shape == (8, 8, 5)
    maps = explainer.explain(x, targets=1)
    # Reference: the gradient at the nested layer, by hand, on a logits copy.
    inner = keras.Model(base.inputs, base.get_layer("last_conv").output)
    with tf.GradientTape() as tape:
        activations = inner(x)
        tape.watch(activations)
        pooled = tf.reduce_mean(activations, axis=(1, 2))
        logits = tf.matmul(pooled, model.get_layer("head").kernel) + model.get_layer("head").bias
        score = tf.reduce_sum(logits[:, 1])
    grads = tape.gradient(score, activations).numpy()
    cam = np.maximum((activations.numpy() * grads.mean(axis=(1, 2), keepdims=True)).sum(-1), 0)
    expected = scipy.ndimage.zoom(cam, (1, 12 / 8, 12 / 8), order=1)
    np.testing.assert_allclose(maps[..., 0], expected, atol=1e-5)
    np.testing.assert_array_equal(maps[..., 0], maps[..., 2])  # same over channels
    # the default layer is the base's last convolution
    assert kd.methods.GradCAM().layer_function(kd.Explainer(
        model, method="gradcam")._forward).layer_name == "base/last_conv"


def test_cam_errors_are_raised_when_the_explainer_is_built():
    model = kd.datasets.load_digits_model()
    with pytest.raises(ValueError, match="nope"):
        kd.Explainer(model, method=kd.methods.GradCAM(layer="nope"))
    with pytest.raises(ValueError, match="position axes"):
        kd.Explainer(model, method=kd.methods.LayerCAM(layer="fc"))
    # A model without a layer graph (subclassed) cannot name a layer; token models can
    # (tests/test_text.py: CAMs after the embedding).
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, x):
            return self.dense(keras.ops.reshape(x, (keras.ops.shape(x)[0], -1)))

    subclassed = Subclassed()
    subclassed(np.zeros((1, 4, 4, 1), "float32"))
    with pytest.raises(ValueError, match="readable layer graph"):
        kd.Explainer(subclassed, method="gradcam", input_shape=(4, 4, 1))
    with pytest.raises(TypeError, match="layer"):
        kd.methods.GradCAM(layer=3.5)
    with pytest.raises(ValueError, match="max_channels"):
        kd.methods.ScoreCAM(max_channels=0)


@pytest.mark.slow
def test_cam_methods_export_and_serve_as_dance_bases(tmp_path, digits):
    model, x = digits
    explainer = kd.Explainer(model, method=kd.methods.GradCAM(layer="conv3"))
    explainer.export(tmp_path / "1")
    loaded = tf.saved_model.load(str(tmp_path / "1"))
    served = loaded.signatures["explain"](inputs=tf.constant(x[:3]))["saliency"].numpy()
    np.testing.assert_allclose(served, explainer.explain(x[:3]), rtol=1e-5, atol=1e-6)
    dance = kd.Explainer(model, method=kd.methods.LayerCAM(layer="conv3"),
                         decoys=kd.DecoyConfig(layer="conv2", patch=8, steps=5))
    decoys, _ = dance.generate_decoys(x[:1])
    per_decoy = kd.Explainer(model, method=kd.methods.LayerCAM(layer="conv3")).explain(
        decoys[0])
    np.testing.assert_allclose(dance.explain(x[:1])[0], np.ptp(per_decoy, axis=0),
                               rtol=1e-4, atol=1e-5)
    config = kd.methods.get({"name": "scorecam", "config": {"layer": "conv3",
                                                            "max_channels": 4}})
    assert config.get_config() == {"layer": "conv3", "max_channels": 4, "token_grid": None,
                                   "prefix_tokens": None}
    grid = kd.methods.get({"name": "gradcam", "config": {"layer": "norm",
                                                         "token_grid": [4, 4]}})
    assert kd.methods.get({"name": "gradcam", "config": grid.get_config()}).token_grid == (4, 4)


def test_cli_explains_with_a_cam_method_at_a_layer(tmp_path, capsys):
    from test_cli import IMAGES, MODEL, _run_in_process

    status, output = _run_in_process(["explain", MODEL, *IMAGES[:2], "--method=layercam",
                                      "--layer=conv2", f"--out={tmp_path}"], capsys)
    assert status == 0, output.err
    inputs = np.load(tmp_path / "inputs.npy")
    expected = kd.Explainer(kd.datasets.load_digits_model(),
                            method=kd.methods.LayerCAM(layer="conv2")).explain(inputs)
    np.testing.assert_allclose(np.load(tmp_path / "maps.npy"), expected, rtol=1e-5, atol=1e-6)
    status, output = _run_in_process(["explain", MODEL, IMAGES[0], "--layer=conv2",
                                      f"--out={tmp_path}/o"], capsys)
    assert status == 1 and "--layer is for the CAM family" in output.err


@pytest.mark.parametrize("method", [kd.methods.GradCAM(layer="conv"),
                                    kd.methods.Occlusion(patch=8)], ids=lambda m: m.name)
def test_the_callback_carries_new_methods_and_follows_training(tmp_path, method):
    from test_export_callbacks import _read_events, _small_model

    x_train, y_train, x_test, y_test = kd.datasets.load_digits()
    model = _small_model()
    callback = kd.callbacks.ExplanationCallback(kd.Explainer(model, method=method),
                                                x_test[:3], y_test[:3],
                                                log_dir=tmp_path / "logs", save_maps=True)
    model.fit(x_train[:64], y_train[:64], epochs=1, batch_size=32, verbose=0,
              validation_data=(x_test[:16], y_test[:16]), callbacks=[callback])
    saved = np.load(tmp_path / "logs" / "maps_0000.npz")["maps"]
    # The maps of the trained weights (the softmax layer's copy follows them too).
    fresh = kd.Explainer(model, method=method).explain(x_test[:3], y_test[:3])
    np.testing.assert_allclose(saved, fresh, rtol=1e-5, atol=1e-6)
    scalars, images = _read_events(tmp_path / "logs")
    assert len(images["explanations/overlay"]) == 1 and "explanations/sparseness" in scalars


@pytest.mark.parametrize("method", ["gradcam", "layercam", "scorecam"])
def test_a_sublayer_of_a_custom_layer_can_be_named(method):
    """Issue 28, item 1: a layer a custom layer calls is addressable by its path for the
    CAM family and DANCE, and gives the maps of the same layer as a graph node."""
    nested, flat = block_models()
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 2)).astype("float32")
    spec = lambda layer: {"name": method, "config": {"layer": layer}}  # noqa: E731
    got = kd.Explainer(nested, method=spec("block/inner_conv")).explain(x, 1)
    want = kd.Explainer(flat, method=spec("inner_conv")).explain(x, 1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
    if method == "gradcam":
        config = dict(patch=4, steps=10, crop=False)
        got = kd.Explainer(nested, decoys=kd.DecoyConfig(layer="block/inner_conv", **config))
        want = kd.Explainer(flat, decoys=kd.DecoyConfig(layer="inner_conv", **config))
        np.testing.assert_allclose(got.explain(x, 1), want.explain(x, 1), rtol=1e-4,
                                   atol=1e-5)
        assert got.decoy_config.layer == "block/inner_conv"
        with pytest.raises(ValueError, match="block/inner_conv"):  # the list names it
            kd.Explainer(nested, method=spec("no_such_layer"))


SUBLAYER = r"""
import sys
sys.modules["tensorflow"] = None
sys.path.insert(0, "tests")
import numpy as np, keras, keras_dance as kd
from helpers import block_models as _block_models
nested, flat = _block_models()
x = np.random.default_rng(0).uniform(size=(2, 8, 8, 2)).astype("float32")
got = kd.Explainer(nested, method={"name": "gradcam", "config": {"layer": "block/inner_conv"}})
want = kd.Explainer(flat, method={"name": "gradcam", "config": {"layer": "inner_conv"}})
a, b = got.explain(x, 1), want.explain(x, 1)
d = kd.Explainer(nested, decoys=kd.DecoyConfig(layer="block/inner_conv", patch=4, steps=5,
                                               crop=False)).explain(x, 1)
assert np.abs(d).max() > 0
print(keras.config.backend(), float(np.abs(a - b).max() / np.abs(b).max()))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_sublayer_of_a_custom_layer_can_be_named_on_jax_and_pytorch(backend):
    from test_backends import _run

    name, difference = _run(backend, SUBLAYER).split()[-2:]
    assert name == backend and float(difference) < 1e-5
