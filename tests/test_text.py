"""Token models: maps at the embedding, per token; DANCE on word embeddings."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_unchanged, snapshot

import keras_dance as kd

LENGTH, VOCABULARY, DIMENSIONS = 12, 30, 8


def kim_cnn(seed=0, mask_zero=False, nested=False):
    """A small Kim CNN: embedding, parallel convolutions of widths 3 and 4, max pooling."""
    keras.utils.set_random_seed(seed)
    ids = keras.Input((LENGTH,), dtype="int32")
    embedded = keras.layers.Embedding(VOCABULARY, DIMENSIONS, mask_zero=mask_zero,
                                      name="embedding")(ids)
    if nested:
        embedded = keras.Model(ids, embedded, name="encoder")(ids)
    pooled = [keras.layers.GlobalMaxPooling1D(name=f"pool{k}")(
        keras.layers.Conv1D(5, k, activation="relu", name=f"conv{k}")(embedded)) for k in (3, 4)]
    joined = keras.layers.Concatenate(name="features")(pooled)
    return keras.Model(ids, keras.layers.Dense(3, activation="softmax", name="out")(joined))


def tokens(count=3, seed=0, pad_from=9):
    x = np.random.default_rng(seed).integers(1, VOCABULARY, size=(count, LENGTH)).astype(np.int32)
    x[:, pad_from:] = 0
    return x


def reference_gradient(model, x, targets):
    """GradientTape at the embedding output, the rest of the model run by hand."""
    z = tf.constant(model.get_layer("embedding")(x))
    with tf.GradientTape() as tape:
        tape.watch(z)
        pooled = [model.get_layer(f"pool{k}")(model.get_layer(f"conv{k}")(z)) for k in (3, 4)]
        out = model.get_layer("out")
        logits = tf.matmul(tf.concat(pooled, -1), out.kernel) + out.bias
        score = tf.reduce_sum(tf.gather(logits, targets, batch_dims=1))
    return tape.gradient(score, z).numpy()


@pytest.mark.parametrize("reduction", ["mean", "sum", "l2", None])
def test_token_gradient_equals_a_tape_reference_reduced_the_same_way(reduction):
    model = kim_cnn()
    before = snapshot(model)
    x = tokens()
    explainer = kd.Explainer(model, token_reduction=reduction, pad_id=0)
    assert explainer.tokens and explainer.input_shape == (LENGTH,)
    targets = explainer.predict_classes(x)
    maps = explainer.explain(x, targets)
    grad = reference_gradient(model, x, targets)
    expected = {"mean": grad.mean(-1), "sum": grad.sum(-1), "l2": np.linalg.norm(grad, axis=-1),
                None: grad}[reduction]
    pad = x == 0
    expected[pad] = 0.0
    assert maps.shape == ((3, LENGTH) if reduction else (3, LENGTH, DIMENSIONS))
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-7)
    assert np.all(maps[pad] == 0) and np.abs(maps[~pad]).max() > 0
    assert_unchanged(model, before)


def test_integrated_gradients_sum_is_complete_per_token_sum():
    model = kim_cnn()
    x = tokens(4, seed=1, pad_from=LENGTH)  # no padding: completeness over every token
    explainer = kd.Explainer(model, kd.methods.IntegratedGradients(steps=256),
                             token_reduction="sum")
    targets = explainer.predict_classes(x)
    maps = explainer.explain(x, targets)
    logits = kd.Explainer(model)._forward  # logits from the embedded sequence
    z = explainer._inputs.embed(tf.constant(x))
    full = tf.gather(logits(z), targets, batch_dims=1).numpy()
    zero = tf.gather(logits(tf.zeros_like(z)), targets, batch_dims=1).numpy()
    error = np.abs(maps.sum(1) - (full - zero)) / np.maximum(np.abs(full - zero), 1e-6)
    assert np.median(error) < 0.02, error


def test_integrated_gradients_from_the_padding_embedding():
    model = kim_cnn()
    x = tokens(3, seed=2, pad_from=LENGTH)
    explainer = kd.Explainer(model)
    pad = explainer.embed([[0]])[0, 0]  # (E,): the baseline sentence is all padding
    np.testing.assert_allclose(pad, model.get_layer("embedding").embeddings.numpy()[0])
    ig = kd.Explainer(model, kd.methods.IntegratedGradients(steps=256, baseline=pad),
                      token_reduction="sum")
    targets = ig.predict_classes(x)
    z = explainer.embed(x)
    full = tf.gather(explainer._forward(z), targets, batch_dims=1).numpy()
    base = tf.gather(explainer._forward(np.broadcast_to(pad, z.shape).astype(np.float32)),
                     targets, batch_dims=1).numpy()
    error = np.abs(ig.explain(x, targets).sum(1) - (full - base)) / np.abs(full - base)
    assert np.median(error) < 0.02, error
    with pytest.raises(ValueError, match="token model"):
        kd.Explainer(kd.datasets.load_digits_model()).embed([[0]])


@pytest.mark.parametrize("method", ["smoothgrad", "cgi", "gradient_x_input"])
def test_every_method_runs_on_tokens_and_padding_scores_zero(method):
    model = kim_cnn()
    x = tokens()
    maps = kd.Explainer(model, method, pad_id=0).explain(x, np.array([0, 1, 2]))
    assert maps.shape == (3, LENGTH) and np.all(np.isfinite(maps))
    assert np.all(maps[x == 0] == 0) and np.abs(maps[x != 0]).max() > 0


def test_mask_zero_pads_and_nested_embeddings_are_found():
    x = tokens()
    plain = kd.Explainer(kim_cnn()).explain(x, 0)
    nested = kd.Explainer(kim_cnn(nested=True))  # the Embedding inside a nested model
    assert nested._inputs.embedding_path == "encoder/embedding"
    np.testing.assert_allclose(nested.explain(x, 0), plain, rtol=1e-5, atol=1e-7)
    masked = kd.Explainer(kim_cnn(mask_zero=True))  # pad_id 0 from mask_zero
    assert masked._inputs.pad_id == 0 and np.all(masked.explain(x, 0)[x == 0] == 0)


def test_text_decoys_change_one_patch_stay_in_the_box_and_keep_the_layer():
    model = kim_cnn()
    x = tokens(2)
    config = kd.DecoyConfig(layer="conv3", patch=2, steps=30, epsilon=0.1)
    explainer = kd.Explainer(model, decoys=config, pad_id=0)
    engine = explainer.decoys
    assert engine.cropping  # parallel convolutions over the sequence axis: a DAG
    decoys, feasible = explainer.generate_decoys(x)
    assert decoys.shape == (2, engine.num_decoys, LENGTH, DIMENSIONS)
    z = model.get_layer("embedding")(x).numpy()
    matrix = model.get_layer("embedding").embeddings.numpy()
    lo, hi = matrix.min(0), matrix.max(0)
    assert np.all(decoys >= lo - 1e-6) and np.all(decoys <= hi + 1e-6)  # per-dimension box
    sub_model = keras.Model(model.get_layer("embedding").output,
                            model.get_layer("conv3").output)
    for b in range(2):
        reference = sub_model(z[b:b + 1]).numpy()
        epsilon = 0.1 * np.abs(reference).max()
        for j in range(engine.num_decoys):
            start = engine.starts[j // 2][0]
            changed = np.flatnonzero(np.abs(decoys[b, j] - z[b]).max(-1) > 0)
            assert set(changed) <= set(range(start, start + 2))
            if feasible[b, j]:
                got = sub_model(decoys[b, j][None]).numpy()
                assert np.abs(got - reference).max() <= epsilon * (1 + 1e-4)
    assert feasible.mean() > 0.9
    maps = explainer.explain(x)
    assert maps.shape == (2, LENGTH) and np.all(maps[x == 0] == 0) and maps.max() > 0


@pytest.mark.slow
def test_patch_range_on_token_sequences_against_numpy():
    model = kim_cnn()
    x = tokens(2)
    # A ReLU network's gradient is piecewise constant: a wide ε lets decoys cross kinks.
    config = kd.DecoyConfig(layer="conv3", patch=2, stride=1, steps=10, epsilon=0.5)
    explainer = kd.Explainer(model, decoys=config, aggregation="patch_range",
                             token_reduction=None, pad_id=0, batch_size=9)
    decoys, _ = explainer.generate_decoys(x)
    targets = explainer.predict_classes(x)
    plain = kd.Explainer(model, token_reduction=None, pad_id=0)
    engine = explainer.decoys
    covers = kd.decoys.masks.patch_masks(engine.spatial_shape, engine.starts, engine.patch)
    for b in range(2):
        z_maps = np.stack([plain._per_token(plain.method(
            tf.constant(d[None]), plain._forward,
            kd._targets.IndexTargets(tf.constant([targets[b]]))), tf.constant(x[b:b + 1]))[0]
            for d in decoys[b]])
        pairs = z_maps.reshape((-1, 2) + z_maps.shape[1:])
        ranges = pairs.max(1) - pairs.min(1)
        expected = (ranges * covers[..., None]).sum(0) / covers.sum(0)[:, None]
        got = explainer.explain(x[b:b + 1], targets[b:b + 1])[0]
        assert expected.max() > 0
        np.testing.assert_allclose(got, expected * (x[b] != 0)[:, None], rtol=1e-4, atol=1e-7)


def test_token_input_errors_name_the_argument():
    model = kim_cnn()
    explainer = kd.Explainer(model)
    with pytest.raises(ValueError, match=r"token ids in \[0, 30\)"):
        explainer.explain(np.full((1, LENGTH), 30))
    with pytest.raises(ValueError, match="integer token ids"):
        explainer.explain(np.full((1, LENGTH), 0.5))
    with pytest.raises(ValueError, match="token ids of shape"):
        explainer.explain(np.zeros((1, LENGTH + 1), np.int32))
    with pytest.raises(ValueError, match="token_reduction"):
        kd.Explainer(model, token_reduction="max")
    with pytest.raises(ValueError, match="pad_id"):
        kd.Explainer(model, pad_id=VOCABULARY)
    # Integer input without an embedding: a clear error, not zero maps.
    ids = keras.Input((4,), dtype="int32")
    as_float = keras.layers.Lambda(lambda t: tf.cast(t, "float32"))(ids)
    no_embedding = keras.Model(ids, keras.layers.Dense(2)(as_float))
    with pytest.raises(ValueError, match="no Embedding layer"):
        kd.Explainer(no_embedding)
    # Two embeddings: name one.
    two = keras.Input((4,), dtype="int32")
    joined = keras.layers.Concatenate()([keras.layers.Embedding(5, 2, name="a")(two),
                                         keras.layers.Embedding(5, 2, name="b")(two)])
    ambiguous = keras.Model(two, keras.layers.Dense(2)(keras.layers.Flatten()(joined)))
    with pytest.raises(ValueError, match="2 Embedding layers: a, b"):
        kd.Explainer(ambiguous)
    # The ids reach the output another way than through the named embedding: refused.
    with pytest.raises(ValueError, match="only through"):
        kd.Explainer(ambiguous, embedding_layer="a")


def test_sentiment_task_and_shipped_text_model():
    x, y, masks = kd.datasets.make_sentiment(200, seed=2)
    x2, _, _ = kd.datasets.make_sentiment(200, seed=2)
    np.testing.assert_array_equal(x, x2)
    vocabulary = kd.datasets.SENTIMENT_VOCABULARY
    for row, label, mask in zip(x, y, masks):
        words = [vocabulary[t] for t in row]
        deciding = [w for w, m in zip(words, mask) if m]
        polarity = deciding[-1] in kd.datasets.POSITIVE_WORDS
        negated = len(deciding) == 2
        assert label == int(polarity != negated)
        assert deciding[0] in kd.datasets.NEGATORS if negated else True
    # Negators occur in both classes: alone they carry no evidence.
    has_negator = np.array([any(vocabulary[t] in kd.datasets.NEGATORS for t in row) for row in x])
    assert 0.3 < y[has_negator].mean() < 0.7
    model, shipped_vocabulary = kd.datasets.load_text_model()
    assert tuple(shipped_vocabulary) == vocabulary
    assert np.mean(model.predict(x, verbose=0).argmax(1) == y) >= 0.95
    maps = kd.Explainer(model, pad_id=0).explain(x[:8], y[:8])
    assert maps.shape == (8, 16) and np.all(maps[x[:8] == 0] == 0)


def test_word_deletion_and_fidelity_on_token_models():
    model, _ = kd.datasets.load_text_model()
    x, y, masks = kd.datasets.make_sentiment(6, seed=8)
    truth = masks.astype(np.float32)  # the deciding words first
    first = kd.metrics.deletion(model, x, truth, y, baseline=0)
    last = kd.metrics.deletion(model, x, 1.0 - truth, y, baseline=0)
    assert first.mean() < last.mean()  # removing the deciding words loses the class
    with pytest.raises(ValueError, match="token id"):
        kd.metrics.deletion(model, x, truth, y, baseline=0.5)
    with pytest.raises(ValueError, match="word deletion"):
        kd.metrics.fidelity(model, x, truth, y)


def test_viz_text_highlights_words(tmp_path):
    shown = kd.viz.text(["<b>", "not", "good", "", "[PAD]"], [0.5, -1.0, 2.0, 0.0, 0.0])
    assert shown.tokens == ["<b>", "not", "good"]  # padding left out
    np.testing.assert_allclose(shown.weights, [0.25, -0.5, 1.0])
    assert "&lt;b&gt;" in shown.html and "<b>" not in shown.html  # escaped
    assert shown._repr_html_() == shown.html
    assert shown.save(tmp_path / "words.html").read_text().count("<span") == 3
    assert shown.save(tmp_path / "words.png").stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["words.html", "words.png"]
    with pytest.raises(ValueError, match="one score per token"):
        kd.viz.text(["a", "b"], [1.0])
    with pytest.raises(ValueError, match="finite"):
        kd.viz.text(["a"], [np.nan])


def test_sanity_randomisation_keeps_the_token_settings():
    model = kim_cnn()
    x = tokens(3)
    explainer = kd.Explainer(model, token_reduction="sum", pad_id=0)
    results = kd.sanity.model_randomisation(explainer, x, mode="full")
    assert results[0]["layer"] == "all" and np.all(np.isfinite(results[0]["spearman_abs"]))
    copy = kd.sanity._explainer_like(explainer, kd.sanity._copy(model))
    assert copy.token_reduction == "sum" and copy._inputs.pad_id == 0
    assert np.all(copy.explain(x, 0)[x == 0] == 0)


def test_a_padding_mask_consumed_downstream_is_refused_not_dropped():
    # An LSTM reads the embedding's mask; run from a new embedded tensor (noise, decoys)
    # the mask would be lost and the maps silently wrong: the explainer refuses.
    keras.utils.set_random_seed(0)
    ids = keras.Input((LENGTH,), dtype="int32")
    embedded = keras.layers.Embedding(VOCABULARY, DIMENSIONS, mask_zero=True,
                                      name="words")(ids)
    model = keras.Model(ids, keras.layers.Dense(2)(keras.layers.LSTM(4)(embedded)))
    with pytest.raises(ValueError, match="only through the layer 'words'.*mask_zero"):
        kd.Explainer(model)


@pytest.mark.parametrize("method", ["gradcam", "gradcam_plus_plus", "layercam", "scorecam",
                                    "guided_backprop"])
def test_layer_methods_on_token_models_equal_them_on_the_embedded_sequence(method):
    """The CAM family and Guided Backprop read layers after the embedding: on a token
    model they equal the same method on a float model that takes the embedded sequence
    (the same layers), reduced per token the same way; padding scores 0. They refused
    token models before ("a model without a readable layer graph")."""
    keras.utils.set_random_seed(0)
    embedding = keras.layers.Embedding(20, 5, name="embedding")
    conv = keras.layers.Conv1D(6, 3, padding="same", activation="relu", name="conv")
    pool = keras.layers.GlobalAveragePooling1D(name="pool")
    dense = keras.layers.Dense(3, name="out")
    ids_in = keras.Input((9,), dtype="int32")
    token_model = keras.Model(ids_in, dense(pool(conv(embedding(ids_in)))))
    embedded_in = keras.Input((9, 5))
    float_model = keras.Model(embedded_in, dense(pool(conv(embedded_in))))
    ids = np.random.default_rng(0).integers(1, 20, size=(3, 9)).astype("int32")
    ids[1, 6:] = 0
    chosen = {"name": method, "config": {} if method == "guided_backprop" else {"layer": "conv"}}
    explainer = kd.Explainer(token_model, method=chosen, pad_id=0)
    maps = explainer.explain(ids, [0, 1, 2])
    reference = kd.Explainer(float_model, method=chosen).explain(explainer.embed(ids),
                                                                  [0, 1, 2]).mean(-1)
    reference[ids == 0] = 0
    assert maps.shape == (3, 9) and np.abs(maps).max() > 0
    np.testing.assert_allclose(maps, reference, rtol=1e-5, atol=1e-6 * np.abs(reference).max())
    if method != "guided_backprop":  # the default layer is found after the embedding
        default = kd.Explainer(token_model, method=method, pad_id=0).explain(ids, [0, 1, 2])
        np.testing.assert_allclose(default, maps, rtol=1e-5, atol=1e-7)
        with pytest.raises(ValueError, match="Expected a layer after the embedding"):
            kd.Explainer(token_model, method={"name": method, "config": {"layer": "embedding"}})
