"""Vision transformers: CAMs on token grids, layers inside keras_hub blocks, attention
methods and DANCE aligned to patches (tiny keras_hub ViT, DeiT and DINOv2 models built
offline from configurations: ``hub_models``)."""

import keras
import numpy as np
import pytest
from tf_keras_vis.gradcam import Gradcam
from tf_keras_vis.layercam import Layercam
from tf_keras_vis.scorecam import Scorecam
from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
from tf_keras_vis.utils.scores import CategoricalScore

import hub_models as H
import keras_dance as kd
from keras_dance import _vit

PEERS = {"gradcam": Gradcam, "gradcam_plus_plus": None, "layercam": Layercam,
         "scorecam": Scorecam}


def functional_vit(twin=False):
    """A small ViT of plain Keras layers: a patch convolution, a class token made from
    the patches, a pre-norm attention block, the class token pooled. With ``twin`` the
    norm's patch tokens also pass through a graph node of shape (4, 4, C) (``grid``) and
    back: the same computation, where tf-keras-vis can read a spatial layer."""
    keras.utils.set_random_seed(7)
    inputs = keras.Input((32, 32, 3))
    patches = keras.layers.Conv2D(16, 8, strides=8, name="patches")(inputs)
    tokens = keras.layers.Reshape((16, 16))(patches)
    summary = keras.layers.GlobalAveragePooling1D(keepdims=True)(tokens)
    cls = keras.layers.Dense(16, name="class_token")(summary)
    tokens = keras.layers.Concatenate(axis=1)([cls, tokens])
    normed = keras.layers.LayerNormalization(name="norm")(tokens)
    if twin:
        grid = keras.layers.Reshape((4, 4, 16), name="grid")(normed[:, 1:])
        normed = keras.layers.Concatenate(axis=1)(
            [normed[:, :1], keras.layers.Reshape((16, 16))(grid)])
    attended = keras.layers.MultiHeadAttention(2, 8, name="mha")(normed, normed)
    tokens = keras.layers.Add()([tokens, attended])
    hidden = keras.layers.Dense(32, activation="gelu", name="mlp")(tokens[:, 0])
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(hidden))


@pytest.mark.slow  # make test; make check keeps the fast unit tests
@pytest.mark.parametrize("name", sorted(PEERS))
def test_cam_on_a_token_grid_equals_tf_keras_vis_on_the_same_tokens_as_a_spatial_layer(name):
    """Prefix dropped, patch tokens reshaped to (h, w): equal to tf-keras-vis on a twin
    model whose graph has those tokens as a (4, 4, C) layer."""
    model, twin = functional_vit(), functional_vit(twin=True)
    x = H.images(3)
    np.testing.assert_allclose(twin.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)
    method = {"name": name, "config": {"layer": "norm", "token_grid": (4, 4),
                                       "prefix_tokens": 1}}
    explainer = kd.Explainer(model, method=method)
    ours = explainer.explain(x, [0, 1, 2])[..., 0]
    on_grid = kd.Explainer(twin, method={"name": name, "config": {"layer": "grid"}})
    np.testing.assert_allclose(on_grid.explain(x, [0, 1, 2])[..., 0], ours,
                               atol=1e-5 * np.abs(ours).max())
    assert np.abs(ours).max() > 0
    if name == "gradcam_plus_plus":
        # Its α is ill-conditioned in float32 (tests/test_cam.py measures how far both
        # libraries sit from the float64 map): anchored there, on a spatial layer, and
        # equal to ours on the twin's spatial layer above.
        return
    peer = PEERS[name](twin, model_modifier=ReplaceToLinear(), clone=True)
    theirs = peer(CategoricalScore([0, 1, 2]), x, penultimate_layer="grid",
                  seek_penultimate_conv_layer=False, normalize_cam=False)
    np.testing.assert_allclose(ours, theirs, atol=1e-5 * max(1.0, np.abs(theirs).max()))


@pytest.mark.slow  # make test; make check keeps the fast unit tests
@pytest.mark.parametrize("name, prefix, default", [
    ("vit", 1, "vit_encoder/transformer_block_2/ln_1"),
    ("deit", 2, "deit_encoder/transformer_block_2/ln_1"),
    ("dinov2", 3, "encoder/layers_1/norm1")])
def test_keras_hub_vision_transformers_give_their_token_layout(name, prefix, default):
    """The layout comes from the backbone's configuration (patch size, image shape, class,
    distillation and register tokens); the default CAM layer is the last block's
    pre-attention norm, and the default Grad-CAM equals the one given every part."""
    model = H.VISION[name]()
    default = f"{_backbone(model).name}/{default}"  # Keras numbers repeated names
    found = _vit.layout(model)
    assert (found.prefix, found.grid, found.patch_size) == (prefix, (4, 4), (8, 8))
    x = H.images(3)
    explainer = kd.Explainer(model, method="gradcam")
    assert explainer.method.layer_function(explainer.forward).layer_name == default
    maps = explainer.explain(x, [0, 1, 2])
    given = kd.Explainer(model, method=kd.methods.GradCAM(
        layer=default, token_grid=(4, 4), prefix_tokens=prefix)).explain(x, [0, 1, 2])
    np.testing.assert_array_equal(maps, given)
    assert maps.shape == x.shape and np.abs(maps).max() > 0


def _backbone(model):
    return next(layer for layer in model.layers if type(layer).__name__.endswith("Backbone"))


@pytest.mark.slow  # make test; make check keeps the fast unit tests
def test_the_encoder_output_of_a_class_token_vit_gets_no_gradient_and_says_so():
    """keras_hub ViT pools the class token after the encoder's per-token norm: the patch
    tokens there get exactly zero gradient. The map is zero, and a warning names why."""
    model, x = H.vit(), H.images(2)
    explainer = kd.Explainer(model, method=kd.methods.GradCAM(layer="vit_encoder"))
    with pytest.warns(UserWarning, match="identically zero for 2 of 2.*no gradient"):
        maps = explainer.explain(x, [0, 1])
    assert np.abs(maps).max() == 0
    pooled = kd.Explainer(H.vit(pooling="gap"), method=kd.methods.GradCAM(layer="vit_encoder"))
    assert np.abs(pooled.explain(x, [0, 1])).max() > 0  # mean-pooled: the patches count


def test_token_layers_without_a_grid_are_refused_before_anything_compiles():
    model = functional_vit()
    with pytest.raises(ValueError, match=r"patch grid of the token layer 'norm'.*token_grid"):
        kd.Explainer(model, method=kd.methods.GradCAM(layer="norm"))
    with pytest.raises(ValueError, match=r"3x3 patch tokens.*\(17, 16\)"):
        kd.Explainer(model, method=kd.methods.GradCAM(layer="norm", token_grid=(3, 3),
                                                      prefix_tokens=1))
    with pytest.raises(ValueError, match="1 prefix tokens and 3x3.*prefix read from the ViTBack"):
        kd.Explainer(H.vit(), method=kd.methods.LayerCAM(layer="vit_encoder",
                                                         token_grid=(3, 3)))
    with pytest.raises(ValueError, match=r"only for a token layer.*'patches'"):
        kd.Explainer(model, method=kd.methods.GradCAM(layer="patches", token_grid=(4, 4)))
    for bad in [(4,), (4, 0), "4x4", (4.0, 4)]:
        with pytest.raises(ValueError, match="Expected `token_grid`"):
            kd.methods.GradCAM(token_grid=bad)
    with pytest.raises(ValueError, match="Expected `prefix_tokens`"):
        kd.methods.ScoreCAM(prefix_tokens=-1)
    # Not a keras_hub backbone: the default is the last layer with spatial axes.
    explainer = kd.Explainer(model, method="gradcam")
    assert explainer.method.layer_function(explainer.forward).layer_name == "patches"
    # Given explicitly, the prefix defaults to the tokens beyond h·w.
    maps = kd.Explainer(model, method=kd.methods.GradCAM(layer="norm", token_grid=(4, 4))
                        ).explain(H.images(2), [0, 1])
    assert np.abs(maps).max() > 0


def test_guided_backprop_refuses_a_model_with_no_relu_to_guide():
    """On a GELU transformer Guided Backprop would be the plain gradient (measured: max
    difference 0.0): refused, naming what to use instead."""
    with pytest.raises(ValueError, match="no ReLU layer.*GELU.*method='gradient'"):
        kd.Explainer(H.vit(), method="guided_backprop")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 2))
    inner = keras.Sequential([keras.layers.Conv2D(4, 3), keras.layers.ReLU(name="inner_relu")])

    class Wrapped(keras.layers.Layer):  # a ReLU layer inside a custom layer
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.block = keras.layers.Dense(4, activation="relu", name="hidden")

        def call(self, x):
            return self.block(x)

    h = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, name="plain")(inputs))
    only_inside = keras.Model(inputs, keras.layers.Dense(2)(Wrapped(name="wrapped")(h)))
    with pytest.raises(ValueError, match=r"not reached: wrapped/hidden"):
        kd.Explainer(only_inside, method="guided_backprop")
    h = keras.layers.Flatten()(inner(inputs))
    both = keras.Model(inputs, keras.layers.Dense(2)(Wrapped(name="wrapped")(h)))
    with pytest.warns(UserWarning, match=r"guides the 1 ReLU layers.*not the 1 inside.*"
                                         r"wrapped/hidden"):
        maps = kd.Explainer(both, method="guided_backprop").explain(H.images(1)[:, :8, :8, :2])
    assert np.abs(maps).max() > 0


def attention_models():
    """Two pre-norm attention blocks of plain Keras layers on a 4×4 patch grid with a
    class token. ``model`` calls its MultiHeadAttention layers as users do (the fused
    path); ``scored`` shares every layer and also outputs each layer's probabilities
    (Keras's own ``return_attention_scores``): the reference the methods are checked on."""
    keras.utils.set_random_seed(8)
    inputs = keras.Input((32, 32, 3))
    patches = keras.layers.Conv2D(16, 8, strides=8, name="patches")(inputs)
    tokens = keras.layers.Reshape((16, 16))(patches)
    summary = keras.layers.GlobalAveragePooling1D(keepdims=True)(tokens)
    start = keras.layers.Concatenate(axis=1)(
        [keras.layers.Dense(16, name="class_token")(summary), tokens])
    blocks = [(keras.layers.LayerNormalization(name=f"norm{i}"),
               keras.layers.MultiHeadAttention(2, 8, name=f"mha{i}"),
               keras.layers.Dense(16, activation="gelu", name=f"mlp{i}")) for i in (1, 2)]
    head = keras.layers.Dense(3, name="logits")

    def run(scores):
        tokens, found = start, []
        for norm, mha, mlp in blocks:
            normed = norm(tokens)
            if scores:
                attended, probabilities = mha(normed, normed, return_attention_scores=True)
                found.append(probabilities)
            else:
                attended = mha(normed, normed)
            tokens = keras.layers.Add()([tokens, attended])
            tokens = keras.layers.Add()([tokens, mlp(tokens)])
        return head(tokens[:, 0]), found

    logits, found = run(True)
    scored = keras.Model(inputs, [logits] + found)
    logits, _ = run(False)
    return keras.Model(inputs, logits), scored


def _zoom(cams, size):
    import scipy.ndimage
    return np.stack([scipy.ndimage.zoom(c, np.divide(size, c.shape), order=1) for c in cams])


def _reference_attention(scored, x, classes):
    import tensorflow as tf

    @tf.function
    def run(x):
        with tf.GradientTape() as tape:
            logits, *probabilities = scored(x, training=False)
            score = tf.reduce_sum(tf.gather(logits, classes, axis=1, batch_dims=1))
        return logits, probabilities, tape.gradient(score, probabilities)

    logits, probabilities, grads = run(tf.constant(x))
    return [p.numpy().astype(np.float64) for p in probabilities], [
        g.numpy().astype(np.float64) for g in grads]


def test_attention_methods_equal_their_definitions_on_keras_own_attention_scores():
    """Rollout and the gradient-weighted rule, in NumPy from the probabilities and
    gradients Keras's ``return_attention_scores`` gives on a twin sharing every layer."""
    model, scored = attention_models()
    x, classes = H.images(3), np.array([0, 1, 2])
    probabilities, grads = _reference_attention(scored, x, classes)
    eye = np.eye(17)
    rollout = None
    for a in probabilities:
        mixed = a.mean(axis=1) + eye
        mixed /= mixed.sum(-1, keepdims=True)
        rollout = mixed if rollout is None else mixed @ rollout
    weighted = eye[None]
    for a, g in zip(probabilities, grads):
        weighted = weighted + np.maximum(g * a, 0).mean(axis=1) @ weighted
    for name, relevance in [("attention_rollout", rollout), ("attention_gradient", weighted)]:
        want = _zoom(relevance[:, 0, 1:].reshape(-1, 4, 4), (32, 32))
        explainer = kd.Explainer(model, method=kd.methods.get(
            {"name": name, "config": {"token_grid": (4, 4), "prefix_tokens": 1}}))
        got = explainer.explain(x, classes)
        assert got.shape == x.shape and np.all(got[..., 0] == got[..., 2])
        np.testing.assert_allclose(got[..., 0], want, atol=1e-5 * np.abs(want).max(), rtol=0,
                                   err_msg=name)
    # Rollout is class-agnostic; the gradient rule is not.
    again = kd.Explainer(model, method=kd.methods.AttentionRollout(
        token_grid=(4, 4), prefix_tokens=1)).explain(x, [2, 2, 2])
    np.testing.assert_array_equal(again, kd.Explainer(model, method=kd.methods.AttentionRollout(
        token_grid=(4, 4), prefix_tokens=1)).explain(x, classes))


def test_attention_is_read_in_call_order_without_changing_the_model():
    model = H.vit()
    explainer = kd.Explainer(model, method="attention_gradient")
    function = explainer.forward.attention_forward()
    assert function.layer_names == [
        f"{_backbone(model).name}/vit_encoder/transformer_block_{i}/mha" for i in (1, 2)]
    x = H.images(2)
    probabilities, logits = function(keras.ops.convert_to_tensor(x))
    for a in probabilities:
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a).sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(logits), model.predict(x, verbose=0),
                               atol=1e-5)
    from keras_dance import _graph
    _, mha = _graph.find_layer(model, "transformer_block_1/mha")
    assert "_compute_attention" not in mha.__dict__ and "call" not in mha._softmax.__dict__
    # Batches explain as each input alone, under any memory knob.
    whole = kd.Explainer(model, method="attention_gradient", batch_size=64).explain(x, [0, 1])
    alone = np.concatenate([kd.Explainer(model, method="attention_gradient", batch_size=1)
                            .explain(x[i:i + 1], [i]) for i in range(2)])
    np.testing.assert_allclose(whole, alone, atol=1e-6 * np.abs(whole).max())


@pytest.mark.slow  # make test; make check keeps the fast unit tests
@pytest.mark.parametrize("name", ["vit", "deit", "dinov2"])
def test_attention_methods_on_keras_hub_vision_transformers(name):
    """The class token's row over the patches, on the backbone's grid; DeiT's two and
    DINOv2's three prefix tokens are left out."""
    model, x = H.VISION[name](), H.images(2)
    for method in ["attention_rollout", "attention_gradient"]:
        maps = kd.Explainer(model, method=method).explain(x, [0, 1])
        assert maps.shape == x.shape and np.all(np.isfinite(maps)) and maps.min() >= 0
        assert np.ptp(maps[0]) > 0, method
    rows = kd.Explainer(model, method=kd.methods.AttentionRollout(query="mean")).explain(x)
    assert not np.allclose(rows, kd.Explainer(model, method="attention_rollout").explain(x))


def test_attention_methods_give_per_token_scores_on_text_transformers():
    """BERT: one score per token (the [CLS] row, which BERT pools), padding 0."""
    model = H.bert()
    x = H.inputs(model)
    for method in ["attention_rollout", "attention_gradient"]:
        explainer = kd.Explainer(model, method=method)
        scores = explainer.explain(x, 1)
        assert scores.shape == x["token_ids"].shape
        np.testing.assert_array_equal(scores[x["padding_mask"] == 0], 0)
        assert np.all(scores[x["padding_mask"] == 1] > 0)
        explanation = explainer.explain_text(H.TEXTS, 1)
        np.testing.assert_allclose(explanation.scores, scores, atol=1e-6)


def test_attention_methods_refuse_models_they_cannot_read():
    from helpers import small_conv_model
    with pytest.raises(ValueError, match="no MultiHeadAttention"):
        kd.Explainer(small_conv_model(activation=None), method="attention_rollout")

    class WindowAttention(keras.layers.Layer):  # attention computed its own way (Swin)
        def call(self, x):
            weights = keras.ops.softmax(keras.ops.einsum("btc,bsc->bts", x, x))
            return keras.ops.einsum("bts,bsc->btc", weights, x)

    inputs = keras.Input((8, 4))
    hidden = WindowAttention(name="window")(inputs)
    mha = keras.layers.MultiHeadAttention(1, 4)(hidden, hidden)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(mha)))
    with pytest.raises(ValueError, match="class WindowAttention"):
        kd.Explainer(model, method="attention_gradient")
    with pytest.raises(ValueError, match="Expected `query`"):
        kd.methods.AttentionRollout(query="cls")
    with pytest.raises(ValueError, match=r"query.*\[-17, 17\)"):
        kd.Explainer(H.vit(), method=kd.methods.AttentionRollout(query=17))
    with pytest.raises(ValueError, match="patch grid"):
        kd.Explainer(attention_models()[0], method="attention_rollout")


VISION_PARITY = r"""
import json, sys
import numpy as np, keras, keras_dance as kd
import keras_hub
settings = json.loads(sys.argv[1])
out = {}
x = np.load(settings["dir"] + "/x.npy")
for name in settings["models"]:
    model = keras.saving.load_model(settings["dir"] + f"/{name}.keras")
    for key, method in settings["methods"].items():
        out[f"{name}/{key}"] = kd.Explainer(model, method=method).explain(x, [0, 1])
    out[f"{name}/dance"] = kd.Explainer(model, decoys=kd.DecoyConfig(**settings["dance"])
                                        ).explain(x, [0, 1])
np.savez(settings["out"], **out)
print(keras.config.backend())
"""

VISION_METHODS = {
    "gradient": "gradient", "gradient_x_input": "gradient_x_input", "cgi": "cgi",
    "integrated_gradients": {"name": "integrated_gradients", "config": {"steps": 16}},
    "smoothgrad": {"name": "smoothgrad", "config": {"num_samples": 8}},
    "vargrad": {"name": "vargrad", "config": {"num_samples": 8}},
    "squaregrad": {"name": "squaregrad", "config": {"num_samples": 8}},
    "occlusion": {"name": "occlusion", "config": {"patch": 8}},
    "rise": {"name": "rise", "config": {"num_masks": 64}},
    "kernel_shap": {"name": "kernel_shap", "config": {"num_samples": 100}},
    "gradcam": "gradcam", "gradcam_plus_plus": "gradcam_plus_plus", "layercam": "layercam",
    "scorecam": {"name": "scorecam", "config": {"max_channels": 8}},
    "attention_rollout": "attention_rollout", "attention_gradient": "attention_gradient"}
VISION_DANCE = {"layer": "patch_embedding", "patch": 8, "steps": 10}


@pytest.fixture(scope="module")
def tensorflow_vision_maps(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vision")
    x = H.images(2)
    np.save(folder / "x.npy", x)
    want = {}
    for name in ("vit", "deit"):
        model = H.VISION[name]()
        model.save(folder / f"{name}.keras")
        for key, method in VISION_METHODS.items():
            want[f"{name}/{key}"] = kd.Explainer(model, method=method).explain(x, [0, 1])
        want[f"{name}/dance"] = kd.Explainer(model, decoys=kd.DecoyConfig(**VISION_DANCE)
                                             ).explain(x, [0, 1])
    return folder, want


def test_every_listed_method_is_parity_tested_on_vision_transformers():
    listed = set(kd.methods.METHOD_NAMES) - {"guided_backprop"}  # refused: no ReLU
    assert listed == set(VISION_METHODS)


@pytest.mark.heavy
@pytest.mark.xdist_group("vision_parity")
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_vision_transformer_maps_are_tensorflows_on_jax_and_pytorch(
        backend, tensorflow_vision_maps, tmp_path):
    """The same .keras files of a keras_hub ViT and DeiT give TensorFlow's maps (within
    1e-4 of the map's scale) for every method and DANCE at the patch embedding."""
    import json
    from test_backends import _run
    folder, want = tensorflow_vision_maps
    settings = {"models": ["vit", "deit"], "methods": VISION_METHODS, "dance": VISION_DANCE,
                "dir": str(folder), "out": str(tmp_path / "out.npz")}
    assert _run(backend, VISION_PARITY, json.dumps(settings)).split()[-1] == backend
    got = np.load(settings["out"])
    failures = []
    for key, value in want.items():
        scale = np.abs(value).max()
        assert scale > 0, key
        error = np.abs(got[key] - value).max() / scale
        print(backend, key, f"{error:.2e}")
        if error > 1e-4:
            failures.append((key, error))
    assert not failures, failures


@pytest.mark.slow  # make test; make check keeps the fast unit tests
def test_dance_on_a_vision_transformer_uses_its_patches_and_solves_patch_by_patch():
    """The default decoy patch is the model's (8×8, on its grid); at the patch embedding
    (a sublayer applied to the image itself) each problem's constraint is evaluated on
    its own patch, verified exact, and the maps equal the full-model solve's."""
    from helpers import assert_unchanged, snapshot
    model, x = H.vit(), H.images(2)
    before, config = snapshot(model), model.to_json()
    explainer = kd.Explainer(model, decoys=kd.DecoyConfig(layer="patch_embedding", steps=20))
    engine = explainer.decoys
    assert engine.patch == (8, 8) and engine.num_patches == 16
    assert np.all(np.asarray(engine.starts) % 8 == 0)
    assert engine.cropping and engine.crop_plan.crop_shape == (8, 8), engine.reason
    maps, details = explainer.explain(x, [0, 1], return_details=True)
    assert np.all(details["feasible_fraction"] == 1) and np.abs(maps).max() > 0
    view = explainer.model_view
    whole_model = kd.Explainer(model, decoys=kd.DecoyConfig(
        layer=view.layer_function("patch_embedding"), patch=8, steps=20))
    assert not whole_model.decoys.cropping  # F_l read from the whole model's call
    np.testing.assert_allclose(whole_model.explain(x, [0, 1]), maps,
                               atol=1e-4 * np.abs(maps).max(), rtol=0)
    assert_unchanged(model, before)
    assert model.to_json() == config
    # A layer after the tokens mix is not local: no crops, the whole model's call.
    late = kd.Explainer(model, decoys=kd.DecoyConfig(layer="transformer_block_1/ln_1",
                                                     steps=5))
    assert late.decoys.patch == (8, 8) and not late.decoys.cropping


FAMILY_LIGHT = {"integrated_gradients": {"steps": 8}, "smoothgrad": {"num_samples": 4},
                "squaregrad": {"num_samples": 4}, "vargrad": {"num_samples": 4},
                "rise": {"num_masks": 32}, "kernel_shap": {"num_samples": 100},
                "occlusion": {"patch": 8}, "scorecam": {"max_channels": 4}}
CAMS = ("gradcam", "gradcam_plus_plus", "layercam", "scorecam")
NO_RELU = {"guided_backprop": "no ReLU layer"}
NO_MHA = {"attention_rollout": "no MultiHeadAttention",
          "attention_gradient": "no MultiHeadAttention"}
OTHER_ATTENTION = {"attention_rollout": "attention layers of class",
                   "attention_gradient": "attention layers of class"}
#: docs/real_models.md's keras_hub table: what each family refuses (and why); every other
#: listed method, and DANCE at the first convolution, must give finite maps.
FAMILY_REFUSALS = {
    "ResNet": NO_MHA, "DenseNet": NO_MHA, "VGG": NO_MHA, "Xception": NO_MHA,
    "EfficientNet": {**NO_MHA, **NO_RELU}, "MobileNet": {**NO_MHA, **NO_RELU},
    "CSPNet": {**NO_MHA, **NO_RELU},
    "ViT": NO_RELU, "DeiT": NO_RELU, "DINOv2": NO_RELU,
    "Swin": {**NO_RELU, **OTHER_ATTENTION, **{name: "spatial axes" for name in CAMS}},
    "MiT": {**NO_RELU, **OTHER_ATTENTION},
}


@pytest.mark.heavy
@pytest.mark.parametrize("family", sorted(FAMILY_REFUSALS))
def test_keras_hub_image_families_work_or_refuse_clearly(family):
    """Every keras_hub image-classifier family that builds offline, tiny and random: each
    listed method gives finite maps of the image's shape, or refuses at construction
    with the reason docs/real_models.md gives; DANCE runs at the first convolution."""
    import warnings
    import hub_images
    from keras_dance import _graph
    model, x = hub_images.build(family), H.images(2)
    refusals = FAMILY_REFUSALS[family]
    for name in kd.methods.METHOD_NAMES:
        method = {"name": name, "config": FAMILY_LIGHT.get(name, {})}
        if name in refusals:
            with pytest.raises(ValueError, match=refusals[name]):
                kd.Explainer(model, method=method)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # random weights: a CAM may be all zero
            maps = kd.Explainer(model, method=method).explain(x, [0, 1])
        assert maps.shape == x.shape and np.all(np.isfinite(maps)), (family, name)
        if name not in CAMS:
            assert np.abs(maps).max() > 0, (family, name)
    first = next("/".join(p) for p, layer in _graph.sublayer_paths(model)
                 if isinstance(layer, keras.layers.Conv2D))
    maps = kd.Explainer(model, decoys=kd.DecoyConfig(layer=first, patch=8, steps=5)
                        ).explain(x, [0, 1])
    assert maps.shape == x.shape and np.all(np.isfinite(maps)), (family, "dance")


def test_an_unknown_layer_lists_every_layer_and_sublayer_in_call_order():
    class Reversed(keras.layers.Layer):  # made in one order, called in the other
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.second = keras.layers.Dense(4, name="second")
            self.first = keras.layers.Dense(4, name="first")

        def call(self, x):
            return self.second(self.first(x))

    inputs = keras.Input((8, 8, 2))
    hidden = Reversed(name="pair")(keras.layers.Conv2D(4, 3, name="conv")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(hidden)))
    with pytest.raises(ValueError, match=r"in call order: .*conv, pair, pair/first, "
                                         r"pair/second.*Received: layer='nothing'"):
        kd.Explainer(model, method=kd.methods.GradCAM(layer="nothing"))
    with pytest.raises(ValueError, match=r"in call order: .*pair/first, pair/second"):
        kd.Explainer(model, decoys=kd.DecoyConfig(layer="nothing"))
    explainer = kd.Explainer(H.vit(), method=kd.methods.GradCAM(
        layer="transformer_block_1/ln_1"))  # a unique end of a path
    assert explainer.method.layer_function(explainer.forward).layer_name.endswith(
        "vit_encoder/transformer_block_1/ln_1")


@pytest.mark.slow  # make test; make check keeps the fast unit tests
def test_vision_transformer_explanations_export_and_serve(tmp_path):
    """Token-grid Grad-CAM and the attention rule traced into a SavedModel: the served
    maps are the in-process maps."""
    import tensorflow as tf
    model, x = H.vit(), H.images(2)
    for method in ["gradcam", "attention_gradient"]:
        explainer = kd.Explainer(model, method=method)
        explainer.export(tmp_path / method)
        loaded = tf.saved_model.load(str(tmp_path / method))
        served = loaded.signatures["explain_target"](
            inputs=tf.constant(x), target=tf.constant([0, 1], tf.int32))["saliency"].numpy()
        want = explainer.explain(x, [0, 1])
        np.testing.assert_allclose(served, want, atol=1e-6 * np.abs(want).max(), rtol=0)
