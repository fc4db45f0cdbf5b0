"""SavedModel export round trips, TensorBoard callback, and the export command line."""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_dance as kd

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

LOADER = """
import sys
sys.modules["keras_dance"] = None  # this process cannot import keras_dance
import json, numpy as np, tensorflow as tf
x = np.load(sys.argv[2])
loaded = tf.saved_model.load(sys.argv[1])
explain = loaded.signatures["explain"](inputs=tf.constant(x))
targeted = loaded.signatures["explain_target"](inputs=tf.constant(x),
                                              target=tf.constant(np.ones(len(x), np.int32)))
predictions = loaded.signatures["serving_default"](inputs=tf.constant(x))["predictions"]
np.savez(sys.argv[3], saliency=explain["saliency"].numpy(), target=explain["target"].numpy(),
         targeted=targeted["saliency"].numpy(), targeted_target=targeted["target"].numpy(),
         predictions=predictions.numpy())
print(json.dumps({name: {"inputs": {k: [str(v.dtype.name), v.shape.as_list()]
                                    for k, v in fn.structured_input_signature[1].items()},
                         "outputs": {k: [str(v.dtype.name), v.shape.as_list()]
                                     for k, v in fn.structured_outputs.items()}}
                  for name, fn in loaded.signatures.items()}))
"""


@pytest.fixture(scope="module")
def digits():
    model = kd.datasets.load_digits_model()
    return model, np.load(ROOT / "examples" / "data" / "digits_samples.npy")


@pytest.mark.parametrize("kind", ["plain", pytest.param("dance", marks=pytest.mark.slow)])
def test_export_round_trip_without_keras_dance(tmp_path, digits, kind):
    model, x = digits
    if kind == "plain":
        explainer = kd.Explainer(model, kd.methods.SmoothGrad(num_samples=5))
    else:
        explainer = kd.Explainer(model, decoys=kd.DecoyConfig(layer="conv2", patch=8, steps=8))
    path = tmp_path / "digits" / "1"
    explainer.export(path)
    np.save(tmp_path / "x.npy", x)
    result = subprocess.run([sys.executable, "-c", LOADER, str(path), str(tmp_path / "x.npy"),
                             str(tmp_path / "out.npz")], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    signatures = json.loads(result.stdout.strip().splitlines()[-1])
    assert signatures["explain"] == {
        "inputs": {"inputs": ["float32", [None, 32, 32, 1]]},
        "outputs": {"saliency": ["float32", [None, 32, 32, 1]], "target": ["int32", [None]]}}
    assert signatures["explain_target"]["inputs"] == {
        "inputs": ["float32", [None, 32, 32, 1]], "target": ["int32", [None]]}
    assert signatures["serving_default"]["outputs"] == {"predictions": ["float32", [None, 10]]}
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_allclose(out["saliency"], explainer.explain(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out["target"], explainer.predict_classes(x))
    np.testing.assert_allclose(out["targeted"], explainer.explain(x, 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out["targeted_target"], 1)
    np.testing.assert_allclose(out["predictions"], model.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-6)
    shown = subprocess.run([str(BIN / "saved_model_cli"), "show", "--dir", str(path), "--all"],
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0
    assert "signature_def['explain_target']" in shown.stdout and "DT_INT32" in shown.stdout


TEXT_LOADER = """
import sys
sys.modules["keras_dance"] = None  # this process cannot import keras_dance
import json, numpy as np, tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
ids = np.load(sys.argv[2])
text = loaded.signatures["explain_text"](text=tf.constant(json.loads(sys.argv[4])))
plain = loaded.signatures["explain"](inputs=tf.constant(ids))
np.savez(sys.argv[3], text_saliency=text["saliency"].numpy(), text_ids=text["ids"].numpy(),
         tokens=text["tokens"].numpy().astype(str), target=text["target"].numpy(),
         saliency=plain["saliency"].numpy())
fn = loaded.signatures["explain"]
print(json.dumps({k: [v.dtype.name, v.shape.as_list()]
                  for k, v in fn.structured_input_signature[1].items()}))
"""


@pytest.mark.slow
def test_text_export_takes_ids_and_raw_strings_without_keras_dance(tmp_path):
    model, vocabulary = kd.datasets.load_text_model()
    explainer = kd.Explainer(model, decoys=kd.DecoyConfig(layer="conv3", patch=1, steps=6),
                             pad_id=0)
    path = explainer.export(tmp_path / "text" / "1",
                            vocabulary=kd.datasets.SAVED_MODELS / "text_cnn.vocab.txt")
    assert (path / "assets" / "vocabulary.txt").exists()
    assert [p.name for p in (tmp_path / "text").iterdir()] == ["1"]  # no staging left
    ids, _, _ = kd.datasets.make_sentiment(3, seed=5)
    np.save(tmp_path / "ids.npy", ids)
    sentences = ["The film was NOT very good!", "a zorblax, truly dull plot"]
    result = subprocess.run([sys.executable, "-c", TEXT_LOADER, str(path), str(tmp_path / "ids.npy"),
                             str(tmp_path / "out.npz"), json.dumps(sentences)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"inputs": ["int32", [None, 16]]}
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_allclose(out["saliency"], explainer.explain(ids), rtol=1e-5, atol=1e-5)
    index = {word: i for i, word in enumerate(vocabulary)}
    expected_ids = np.zeros((2, 16), np.int32)
    for row, sentence in enumerate(["the film was not very good", "a zorblax truly dull plot"]):
        expected_ids[row, :len(sentence.split())] = [index.get(w, 1) for w in sentence.split()]
    np.testing.assert_array_equal(out["text_ids"], expected_ids)  # "zorblax" → 1 (OOV)
    assert list(out["tokens"][1, :3]) == ["a", "zorblax", "truly"] and out["tokens"][1, 5] == ""
    np.testing.assert_allclose(out["text_saliency"], explainer.explain(expected_ids),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out["target"], [0, 0])  # "not very good", "dull": negative
    with pytest.raises(ValueError, match="only for token models"):
        kd.Explainer(kd.datasets.load_digits_model()).export(tmp_path / "d", vocabulary=vocabulary)
    with pytest.raises(ValueError, match="Expected `vocabulary`"):
        explainer.export(tmp_path / "bad", vocabulary=["[PAD]"])
    assert not (tmp_path / "d").exists() and not (tmp_path / "bad").exists()


def test_callback_writes_word_scores_for_a_text_model(tmp_path):
    model, vocabulary = kd.datasets.load_text_model()
    x, y, _ = kd.datasets.make_sentiment(4, seed=6)
    explainer = kd.Explainer(model, pad_id=0)
    callback = kd.callbacks.ExplanationCallback(explainer, x, y, log_dir=tmp_path,
                                                vocabulary=vocabulary)
    model.compile(loss="sparse_categorical_crossentropy")
    model.evaluate(x, y, verbose=0, callbacks=[callback])
    scalars, texts = _read_events(tmp_path)
    assert "explanations/deletion_auc" in scalars
    (step, lines), = texts["explanations/text"]
    maps = explainer.explain(x, y)
    first = lines[0].decode()
    words = [vocabulary[i] for i in x[0] if i != 0]
    assert first.startswith(f"class {y[0]}: ") and first.split(": ", 1)[1] == " ".join(
        f"{w} ({s:+.3f})" for w, s in zip(words, maps[0][x[0] != 0]))
    with pytest.raises(ValueError, match="only for token models"):
        kd.callbacks.ExplanationCallback(kd.Explainer(_small_model()), np.zeros((1, 32, 32, 1)),
                                         vocabulary=vocabulary)


def test_export_refuses_to_overwrite_and_interrupted_export_leaves_nothing(tmp_path, digits,
                                                                          monkeypatch):
    model, _ = digits
    explainer = kd.Explainer(model)
    target = tmp_path / "m" / "1"
    target.mkdir(parents=True)
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        explainer.export(target)
    assert (target / "keep.txt").read_text() == "mine"

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        explainer.export(tmp_path / "m" / "2")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1"]
    monkeypatch.undo()
    explainer.export(target, overwrite=True)
    assert (target / "saved_model.pb").exists() and not (target / "keep.txt").exists()
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1"]


def _read_events(log_dir):
    scalars, images = {}, {}
    for path in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tensor = tf.make_ndarray(value.tensor)
                if value.tag.endswith(("/input", "/overlay", "/text")):
                    images.setdefault(value.tag, []).append((event.step, tensor))
                else:
                    scalars.setdefault(value.tag, []).append((event.step, float(tensor)))
    return scalars, images


def _small_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((32, 32, 1)), keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
        keras.layers.MaxPooling2D(4), keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax", name="out")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    return model


def test_callback_in_fit_and_evaluate_writes_events_and_changes_nothing(tmp_path):
    x_train, y_train, x_test, y_test = kd.datasets.load_digits()
    x_train, y_train = x_train[:128], y_train[:128]
    probe, labels = x_test[:4], y_test[:4]

    reference = _small_model()
    keras.utils.set_random_seed(1)
    reference.fit(x_train, y_train, epochs=2, batch_size=32, validation_data=(x_test[:32], y_test[:32]),
                  verbose=0)

    model = _small_model()
    callback = kd.callbacks.ExplanationCallback(kd.Explainer(model), probe, labels,
                                                log_dir=tmp_path / "logs", save_maps=True)
    keras.utils.set_random_seed(1)
    model.fit(x_train, y_train, epochs=2, batch_size=32, validation_data=(x_test[:32], y_test[:32]),
              callbacks=[callback], verbose=0)
    for a, b in zip(reference.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    scalars, images = _read_events(tmp_path / "logs")
    assert [step for step, _ in scalars["explanations/sparseness"]] == [0, 1]
    assert len(scalars["explanations/deletion_auc"]) == 2
    assert all(0 <= value <= 1 for _, value in scalars["explanations/sparseness"])
    assert len(images["explanations/overlay"]) == 2 and len(images["explanations/input"]) == 2
    saved = np.load(tmp_path / "logs" / "maps_0001.npz")
    np.testing.assert_allclose(saved["maps"], kd.Explainer(model).explain(probe, labels),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(saved["targets"], labels)

    model.evaluate(x_test[:32], y_test[:32], callbacks=[callback], verbose=0)
    scalars, _ = _read_events(tmp_path / "logs")
    assert len(scalars["explanations/sparseness"]) == 3


def test_our_event_files_read_as_tf_summary_writes_them(tmp_path):
    """The callback's writer (TensorBoard's own, no TensorFlow) against tf.summary: the same
    tags, plugins, steps and decoded tensors (the PNGs' pixels included)."""
    from keras_dance._tensorboard import SummaryWriter

    images = np.random.default_rng(0).uniform(size=(3, 5, 7, 3)).astype(np.float32)
    images[0, 0, 0] = [0.0, 1.0, 0.999]
    grey = images[..., :1]
    ours = SummaryWriter(tmp_path / "ours")
    theirs = tf.summary.create_file_writer(str(tmp_path / "theirs"))
    for step in (0, 4):
        ours.scalar("s", 0.25 + step, step)
        ours.image("rgb", images, step, 2)
        ours.image("grey", grey, step, 8)
        ours.text("t", ["a (+0.5)", "b"], step)
        with theirs.as_default(step=step):
            tf.summary.scalar("s", 0.25 + step)
            tf.summary.image("rgb", images, max_outputs=2)
            tf.summary.image("grey", grey, max_outputs=8)
            tf.summary.text("t", tf.constant(["a (+0.5)", "b"]))
    ours.flush()
    theirs.flush()

    def read(folder):
        found = []
        for path in Path(folder).glob("events.out.tfevents.*"):
            for event in tf.compat.v1.train.summary_iterator(str(path)):
                for value in event.summary.value:
                    tensor = tf.make_ndarray(value.tensor)
                    if value.tag in ("rgb", "grey"):  # decode the PNGs: pixels, not bytes
                        tensor = [tensor[0], tensor[1]] + [
                            tf.io.decode_png(png).numpy() for png in tensor[2:]]
                    found.append((event.step, value.tag, value.metadata.plugin_data.plugin_name,
                                  tensor))
        return sorted(found, key=lambda item: (item[0], item[1]))

    mine, reference = read(tmp_path / "ours"), read(tmp_path / "theirs")
    assert [item[:3] for item in mine] == [item[:3] for item in reference] and len(mine) == 8
    for (*_, a), (*_, b) in zip(mine, reference):
        if isinstance(b, list):
            assert len(a) == len(b) and a[:2] == b[:2]
            for x, y in zip(a[2:], b[2:]):
                np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_array_equal(a, b)


def test_callback_bad_input():
    model = _small_model()
    explainer = kd.Explainer(model)
    with pytest.raises(TypeError, match="explainer"):
        kd.callbacks.ExplanationCallback(model, np.zeros((1, 32, 32, 1)))
    with pytest.raises(ValueError, match="y"):
        kd.callbacks.ExplanationCallback(explainer, np.zeros((2, 32, 32, 1)), np.zeros(3))
    callback = kd.callbacks.ExplanationCallback(explainer, np.zeros((2, 32, 32, 1)))
    with pytest.raises(ValueError, match="explainer's model"):
        callback.set_model(_small_model())


def test_callback_carries_the_explainers_preprocess(tmp_path):
    model = _small_model()
    probe = kd.datasets.load_digits()[2][:4] * 255.0  # raw pixels; the model wants [0, 1]
    preprocess = lambda t: t / 255.0  # noqa: E731
    explainer = kd.Explainer(model, preprocess=preprocess)
    callback = kd.callbacks.ExplanationCallback(explainer, probe, log_dir=tmp_path / "logs",
                                                save_maps=True)
    callback.set_model(model)
    callback.write(0)
    scalars, _ = _read_events(tmp_path / "logs")
    saved = np.load(tmp_path / "logs" / "maps_0000.npz")
    expected = kd.metrics.deletion(model, probe, saved["maps"], saved["targets"],
                                   steps=callback.deletion_steps, preprocess=preprocess)
    assert scalars["explanations/deletion_auc"][0][1] == pytest.approx(expected.mean(), rel=1e-5)
    np.testing.assert_allclose(saved["maps"] * 255.0,
                               kd.Explainer(model).explain(probe / 255.0, saved["targets"]),
                               rtol=1e-4, atol=1e-7)


def test_export_validates_path_and_overwrite_and_keeps_the_directory(tmp_path):
    explainer = kd.Explainer(_small_model())
    target = tmp_path / "model" / "1"
    explainer.export(target)
    marker = target / "saved_model.pb"
    for bad in ("no", 1, None):
        with pytest.raises(TypeError, match="Expected `overwrite` to be a bool"):
            explainer.export(target, overwrite=bad)
        assert marker.exists()  # a truthy string used to delete the existing export
    for bad in (None, 123, ""):
        with pytest.raises(TypeError, match="Expected `path` to be a directory path"):
            explainer.export(bad)
