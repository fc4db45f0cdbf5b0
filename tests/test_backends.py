"""keras-dance on KERAS_BACKEND=jax and KERAS_BACKEND=torch: every method and DANCE,
equal to TensorFlow.

The backend is fixed when Keras is imported, so the JAX and PyTorch sides run in their own
processes, with TensorFlow made unimportable there (as on a machine with JAX or PyTorch
alone); this process computes the same maps on TensorFlow from the same ``.keras`` file.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_dance as kd

#: The backends beside TensorFlow (make test installs the [jax] and [torch] extras).
OTHERS = ("jax", "torch")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=[pytest.param("jax", marks=pytest.mark.slow), "torch"])
def other(request):
    """Each backend beside TensorFlow, in turn (make check, the fast tier, keeps PyTorch's
    quick runs: JAX compiles every function first, about a minute each)."""
    pytest.importorskip(request.param)
    return request.param


def _installed(backends):
    return [b for b in backends if b == "tensorflow" or _importable(b)]


def _importable(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _env(backend):
    """A subprocess on ``backend``, on one thread (XLA:CPU's or PyTorch's), as the
    suite's other worker already has the second core (two thread pools over two cores
    cost both sides time)."""
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu")
    if backend == "jax":
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                            " intra_op_parallelism_threads=1").strip()
    if backend == "torch":
        env["OMP_NUM_THREADS"] = "1"
    return env


def _run(backend, script, *args, timeout=600):
    """``script`` in a fresh process on ``backend``; its stdout (it must succeed)."""
    result = subprocess.run([sys.executable, "-c", script, *map(str, args)],
                            capture_output=True, text=True, timeout=timeout,
                            env=_env(backend), cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout

SCRIPT = r"""
import json, sys
sys.modules["tensorflow"] = None  # no TensorFlow in this process, as on a JAX-only machine
import numpy as np, keras, keras_dance as kd
settings = json.loads(sys.argv[1])
model = kd.datasets.load_digits_model()
x = kd.datasets.load_digits()[2][:settings["count"]]
targets = np.arange(len(x)) % 10
out = {}
for name, method in settings["methods"].items():
    out[name] = kd.Explainer(model, method=method, batch_size=48).explain(x, targets)
if settings["dance"]:
    explainer = kd.Explainer(model, decoys=kd.DecoyConfig(**settings["dance"]), batch_size=64)
    out["dance"], details = explainer.explain(x, targets, return_details=True)
    out["dance_feasible"] = details["feasible_fraction"]
    out["decoys"], out["found"] = explainer.generate_decoys(x)
if settings["evidence"]:
    out["deletion"] = kd.metrics.deletion(model, x, out["gradient"], targets)
    out["fidelity"] = kd.metrics.fidelity(model, x, out["gradient"], targets)
    text = kd.datasets.load_model("text_cnn")
    ids = (np.arange(3 * text.inputs[0].shape[1]).reshape(3, -1) % 50).astype("int32")
    out["text"] = kd.Explainer(text, method="integrated_gradients").explain(ids, 1)
    from keras_dance import _random
    out["normal"] = np.asarray(_random.normal((32, 32, 1), 5, np.arange(64, dtype="int32")))
    out["uniform"] = np.asarray(_random.uniform((32, 32, 1), 5, np.arange(64, dtype="int32")))
np.savez(settings["out"], **out)
print(keras.config.backend(), "tensorflow" in sys.modules and sys.modules["tensorflow"] is not None)
"""


def _on(backend, tmp_path, methods, dance=None, count=4, evidence=False):
    out = tmp_path / f"{backend}_maps.npz"
    settings = {"methods": methods, "dance": dance, "count": count, "out": str(out),
                "evidence": evidence}
    stdout = _run(backend, SCRIPT, json.dumps(settings))
    assert stdout.split()[-2:] == [backend, "False"]  # no TensorFlow in that process
    return np.load(out)


def _on_tensorflow(methods, dance=None, count=4, evidence=False):
    """The same maps on TensorFlow, in this process (computed once per worker)."""
    key = json.dumps([methods, dance, count, evidence], sort_keys=True)
    if key not in _TENSORFLOW_MAPS:
        _TENSORFLOW_MAPS[key] = _compute_on_tensorflow(methods, dance, count, evidence)
    return _TENSORFLOW_MAPS[key]


_TENSORFLOW_MAPS = {}


def _compute_on_tensorflow(methods, dance, count, evidence):
    model = kd.datasets.load_digits_model()
    x = kd.datasets.load_digits()[2][:count]
    targets = np.arange(len(x)) % 10
    out = {name: kd.Explainer(model, method=method, batch_size=48).explain(x, targets)
           for name, method in methods.items()}
    if dance:
        explainer = kd.Explainer(model, decoys=kd.DecoyConfig(**dance), batch_size=64)
        out["dance"], details = explainer.explain(x, targets, return_details=True)
        out["dance_feasible"] = details["feasible_fraction"]
        out["decoys"], out["found"] = explainer.generate_decoys(x)
    if evidence:
        out["deletion"] = kd.metrics.deletion(model, x, out["gradient"], targets)
        out["fidelity"] = kd.metrics.fidelity(model, x, out["gradient"], targets)
        text = kd.datasets.load_model("text_cnn")
        ids = (np.arange(3 * text.inputs[0].shape[1]).reshape(3, -1) % 50).astype("int32")
        out["text"] = kd.Explainer(text, method="integrated_gradients").explain(ids, 1)
        from keras_dance import _random
        streams = np.arange(64, dtype="int32")
        out["normal"] = _random.normal((32, 32, 1), 5, streams).numpy()
        out["uniform"] = _random.uniform((32, 32, 1), 5, streams).numpy()
    return out


def _methods(names):
    return {name: ({"name": name, "config": {"layer": "conv3"}} if "cam" in name else name)
            for name in names}


#: Deterministic methods and the seeded ones, whose random draws (uniform masks and
#: coalitions, Gaussian noise) are the same bits on both backends: maps within 1e-4 of
#: the map's scale.
EXACT = ["gradient", "gradient_x_input", "integrated_gradients", "cgi", "gradcam",
         "gradcam_plus_plus", "layercam", "scorecam", "occlusion", "rise", "kernel_shap",
         "guided_backprop", "smoothgrad", "squaregrad", "vargrad"]


@pytest.mark.slow
@pytest.mark.xdist_group("parity")  # both backends on one worker: TensorFlow's maps once
def test_every_method_and_dance_equal_tensorflow(tmp_path, other):
    assert set(EXACT) == set(kd.methods.general_method_names())  # attention: test_vit
    methods = _methods(EXACT)
    dance = {"layer": "conv2", "patch": 8, "steps": 10}
    maps = _on(other, tmp_path, methods, dance, evidence=True)
    tf_maps = _on_tensorflow(methods, dance, evidence=True)
    for name in EXACT + ["dance", "text"]:
        scale = np.abs(tf_maps[name]).max()
        np.testing.assert_allclose(maps[name], tf_maps[name], atol=1e-4 * scale, rtol=0,
                                   err_msg=name)
    # The random streams: the very same bits (Gaussian ones included).
    np.testing.assert_array_equal(maps["normal"], tf_maps["normal"])
    np.testing.assert_array_equal(maps["uniform"], tf_maps["uniform"])
    # The decoys: the same problems solved the same way, within float32 rounding.
    np.testing.assert_array_equal(maps["found"], tf_maps["found"])
    np.testing.assert_allclose(maps["decoys"], tf_maps["decoys"], atol=1e-5)
    np.testing.assert_allclose(maps["dance_feasible"], tf_maps["dance_feasible"])
    # The evidence: deletion AUC and fidelity of the same maps on the same model.
    np.testing.assert_allclose(maps["deletion"], tf_maps["deletion"], atol=1e-5)
    np.testing.assert_allclose(maps["fidelity"], tf_maps["fidelity"], atol=1e-4)


BASICS = r"""
import sys
from pathlib import Path
sys.modules["tensorflow"] = None  # no TensorFlow in this process
import numpy as np, keras, keras_dance as kd
out = Path(sys.argv[1])
x_train, y_train, x_test, y_test = kd.datasets.load_digits()
digits = kd.datasets.load_digits_model()

# The README's quick start, verbatim.
explainer = kd.Explainer(digits, method="smoothgrad", batch_size=128)
maps = explainer.explain(x_test[:8])              # (8, 32, 32, 1) float32, raw and signed
maps = explainer.explain(x_test[:8], targets=3)   # or a (B,) int array, or a score function
shown = kd.postprocess(maps)                      # (8, 32, 32) in [0, 1] for display
assert maps.shape == (8, 32, 32, 1) and shown.shape == (8, 32, 32)
print("quick start ok")

# Two maps to compare with TensorFlow's.
smoke = {"gradient": kd.Explainer(digits).explain(x_test[:2], [0, 1]),
         "gradcam": kd.Explainer(digits, method={"name": "gradcam", "config": {"layer": "conv3"}}
                                 ).explain(x_test[:2], [0, 1])}
np.savez(out / "smoke.npz", **smoke)

# Refusals: the same messages as on TensorFlow.
inputs = keras.Input((6,))
cut = keras.layers.Lambda(lambda t: keras.ops.stop_gradient(t))(inputs)
model = keras.Model(inputs, keras.layers.Dense(3)(cut))
makes = [lambda: kd.Explainer(model), lambda: kd.Explainer(digits).explain(np.zeros((2, 5))),
         lambda: kd.DecoyConfig(layer="conv2", value_range="01")]
if keras.config.backend() == "torch":  # JAX exports (with TensorFlow: test_export_from_jax_…)
    makes.append(lambda: kd.Explainer(digits).export(out / "serving" / "1"))
for make in makes:
    try:
        make()
        print("refused: no error")
    except (TypeError, ValueError, RuntimeError, NotImplementedError) as error:
        print("refused:", str(error).replace("\n", " "))

# An explainer follows a model that keeps training.
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                          keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy")
explainers = {name: kd.Explainer(model, method=name, decoys=decoys)
              for name, decoys in (("gradient", None), ("smoothgrad", None),
                                   ("gradient_x_input", kd.DecoyConfig(layer=1, patch=8, steps=3)))}
probe = x_test[:3]
before = {name: e.explain(probe, 1) for name, e in explainers.items()}
model.fit(x_train[:256], y_train[:256], epochs=1, batch_size=32, verbose=0)
for name, e in explainers.items():
    after = e.explain(probe, 1)
    fresh = kd.Explainer(model, method=name, decoys=e.decoy_config).explain(probe, 1)
    assert not np.allclose(after, before[name]), name  # the weights changed ...
    np.testing.assert_allclose(after, fresh, rtol=1e-5, atol=1e-7, err_msg=name)  # ... and were read
print("followed")

# The callback during fit, with validation.
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                          keras.layers.MaxPooling2D(4), keras.layers.Flatten(),
                          keras.layers.Dense(10, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy")
callback = kd.callbacks.ExplanationCallback(kd.Explainer(model), x_test[:4], y_test[:4],
                                            log_dir=str(out / "logs"), save_maps=True)
model.fit(x_train[:128], y_train[:128], epochs=2, batch_size=32, verbose=0, callbacks=[callback],
          validation_data=(x_test[:32], y_test[:32]))
model.save(out / "model.keras")
print("fitted on", keras.config.backend(), "tensorflow" in sys.modules and sys.modules["tensorflow"] is not None)
"""


def test_quick_start_maps_refusals_following_training_and_the_callback(tmp_path, other):
    """One process per backend (TensorFlow unimportable there): the README's quick start;
    gradient and Grad-CAM maps equal to TensorFlow's; the same refusals (JAX returns zero
    gradients where TensorFlow returns None: refused all the same; PyTorch cannot export
    a SavedModel and says where to); an explainer that follows a model still training;
    and the callback's TensorBoard events, checked here against TensorFlow's
    recomputation from the saved model."""
    import tensorflow as tf

    lines = _run(other, BASICS, tmp_path).strip().splitlines()
    assert "quick start ok" in lines and "followed" in lines
    assert lines[-1] == f"fitted on {other} False"
    methods = _methods(["gradient", "gradcam"])
    maps, tf_maps = np.load(tmp_path / "smoke.npz"), _on_tensorflow(methods, count=2)
    for name in methods:
        scale = np.abs(tf_maps[name]).max()
        np.testing.assert_allclose(maps[name], tf_maps[name], atol=1e-4 * scale, rtol=0)
    refusals = [line[len("refused: "):] for line in lines if line.startswith("refused: ")]
    cut, shape, value_range = refusals[:3]
    assert cut.startswith("Expected a model whose outputs can be differentiated")
    assert shape.startswith("Expected `x` of rank 4")
    assert value_range.startswith("Expected `value_range` to be (lo, hi)")
    if other == "torch":  # Keras's SavedModel export from PyTorch needs torch_xla
        (export,) = refusals[3:]
        assert export.startswith("Expected a model on the TensorFlow or JAX backend")
        assert "--backend=jax" in export and not (tmp_path / "serving").exists()
    # The callback's events: both epochs' images and scalars; the last epoch's maps and
    # deletion AUC equal TensorFlow's recomputation from the saved model.
    scalars, images = {}, {}
    for path in (tmp_path / "logs").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tensor = tf.make_ndarray(value.tensor)
                if value.metadata.plugin_data.plugin_name == "images":
                    images.setdefault(value.tag, []).append(len(tensor) - 2)
                else:
                    scalars.setdefault(value.tag, []).append((event.step, float(tensor)))
    assert images == {"explanations/input": [4, 4], "explanations/overlay": [4, 4]}
    assert [step for step, _ in scalars["explanations/sparseness"]] == [0, 1]
    model = kd.datasets.load_digits_model(tmp_path / "model.keras")
    saved = np.load(tmp_path / "logs" / "maps_0001.npz")
    maps = kd.Explainer(model).explain(saved["inputs"], saved["targets"])
    np.testing.assert_allclose(saved["maps"], maps, rtol=0, atol=1e-4 * np.abs(maps).max())
    auc = kd.metrics.deletion(model, saved["inputs"], saved["maps"], saved["targets"], steps=16)
    assert scalars["explanations/deletion_auc"][1][1] == pytest.approx(auc.mean(), abs=1e-5)


@pytest.mark.slow
def test_the_bad_input_suite_runs_unchanged(other):
    """tests/test_bad_input.py, as it is, on the backend: the same bad inputs get the same
    clear errors, and nothing silent (JAX clamped an out-of-range score index; PyTorch
    refused reversed NumPy views)."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests/test_bad_input.py"],
                            capture_output=True, text=True, timeout=600, env=_env(other),
                            cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


@pytest.mark.slow
def test_the_cli_refuses_a_pytorch_export_in_one_line(tmp_path):
    """No traceback: keras-dance's own error line, exit status 1, nothing written."""
    pytest.importorskip("torch")
    out = tmp_path / "serving" / "1"
    result = subprocess.run(
        [sys.executable, "-m", "keras_dance.cli", "export",
         str(ROOT / "saved_models" / "digits_cnn.keras"), f"--out={out}", "--backend=torch"],
        capture_output=True, text=True, timeout=600, env=_env("tensorflow"), cwd=ROOT)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "keras-dance: error: Expected a model on the TensorFlow or JAX backend" in result.stderr
    assert not (tmp_path / "serving").exists()


@pytest.mark.heavy
def test_the_property_and_scaat_tests_run_unchanged(other):
    """The fuzz-style property tests and SCAAT's training tests, as they are, on the
    backend."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests/test_properties.py", "tests/test_scaat.py"],
                            capture_output=True, text=True, timeout=600, env=_env(other),
                            cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


@pytest.mark.heavy
@pytest.mark.xdist_group("engines")  # the worker of test_engines.py: one Ray at a time
def test_the_cli_the_local_engine_and_ray_give_tensorflows_maps(tmp_path):
    images = sorted(str(p) for p in (ROOT / "examples" / "data").glob("digit_*.png"))
    model = str(ROOT / "saved_models" / "digits_cnn.keras")

    def cli(command, backend):
        result = subprocess.run([sys.executable, "-m", "keras_dance.cli", *command],
                                capture_output=True, text=True, timeout=600,
                                env=_env(backend), cwd=ROOT)
        assert result.returncode == 0, result.stderr[-3000:]

    maps = {}
    for backend in _installed(("tensorflow",) + OTHERS):
        out = tmp_path / backend
        # explain is asked for with --backend=NAME from a TensorFlow environment (the
        # command restarts itself on that backend); explain-dataset through KERAS_BACKEND,
        # with the local engine and with one Ray worker (its actors start on the job's
        # backend).
        cli(["explain", model, *images, "--method=integrated_gradients",
             f"--out={out / 'explain'}", f"--backend={backend}"], "tensorflow")
        for engine in ("local", "ray") if backend != "tensorflow" else ("local",):
            workers = ["--workers=1"] if engine == "ray" else []
            cli(["explain-dataset", model, *images, f"--out={out / engine}", f"--engine={engine}",
                 "--method=gradcam", *workers], backend)
        maps[backend] = {"explain": np.load(out / "explain" / "maps.npy")}
        maps[backend].update({engine: kd.distributed.read_maps(out / engine)
                              for engine in ("local", "ray") if (out / engine).exists()})
    reference = maps.pop("tensorflow")
    for backend, runs in maps.items():
        np.testing.assert_allclose(runs["explain"], reference["explain"], rtol=0,
                                   atol=1e-4 * np.abs(reference["explain"]).max(), err_msg=backend)
        assert set(runs["local"]) == set(runs["ray"]) == set(reference["local"]) == set(images)
        for key in images:
            scale = np.abs(reference["local"][key]).max()
            np.testing.assert_allclose(runs["local"][key], reference["local"][key], rtol=0,
                                       atol=1e-4 * scale, err_msg=backend)
            np.testing.assert_allclose(runs["ray"][key], runs["local"][key], rtol=0,
                                       atol=1e-6 * scale, err_msg=backend)


@pytest.mark.heavy
def test_the_gpu_benchmark_runs_on_the_cpu_in_its_quick_form(tmp_path, other):
    """benchmarks/gpu/run.py as a machine with JAX or PyTorch alone runs it (TensorFlow
    made unimportable), with tiny inputs and its stand-in model (MobileNetV2's compilation
    took 136 s of make test-heavy on JAX): every figure is there and positive."""
    wrapper = ("import runpy, sys; sys.modules['tensorflow'] = None; "
               "sys.argv = ['run.py'] + sys.argv[1:]; "
               "runpy.run_path('benchmarks/gpu/run.py', run_name='__main__')")
    out = tmp_path / "gpu.json"
    stdout = _run(other, wrapper, "--quick", "--models=tiny,tiny_vit", f"--out={out}",
                  timeout=900)
    results = json.loads(out.read_text())
    assert results["backend"] == other and results["dataset_images_per_s"] > 0
    row = results["models"]["tiny"]
    for method in ("gradient", "smoothgrad", "integrated_gradients"):
        assert row[method]["ours_images_per_s"] > 0 and row[method]["bare_images_per_s"] > 0
    assert row["dance_float32_s_per_image"] > 0 and row["dance_mixed_bfloat16_s_per_image"] > 0
    vit = results["models"]["tiny_vit"]  # the ViT-B/16 row's quick form
    assert vit["gradient"]["ours_images_per_s"] > 0 and vit["dance_float32_s_per_image"] > 0
    assert "ours/bare" in stdout


EXPORT = r"""
import sys
import numpy as np, keras, keras_dance as kd
out = sys.argv[1]
model = kd.datasets.load_digits_model()
x = kd.datasets.load_digits()[2][:5]
maps = {"x": x}
settings = {"gradient": {}, "gradcam": {"method": {"name": "gradcam", "config": {"layer": "conv3"}}},
            "dance": {"decoys": kd.DecoyConfig(layer="conv2", patch=8, steps=5), "batch_size": 64}}
for name, kwargs in settings.items():
    explainer = kd.Explainer(model, **kwargs)
    explainer.export(f"{out}/{name}/1")
    maps[name], maps[name + "_target"] = explainer.explain(x), explainer.explain(x, targets=3)
text, vocabulary = kd.datasets.load_text_model()
explainer = kd.Explainer(text, pad_id=0)
explainer.export(f"{out}/text/1", vocabulary=vocabulary)
ids, _, _ = kd.datasets.make_sentiment(3, seed=5)
maps["ids"], maps["text"] = ids, explainer.explain(ids)
index = {word: i for i, word in enumerate(vocabulary)}
sentence = [index.get(w, 1) for w in "the film was not very good".split()]
maps["sentence"] = explainer.explain(np.array([sentence + [0] * (16 - len(sentence))], "int32"))
np.savez(f"{out}/maps.npz", **maps)
print(keras.config.backend())
"""


@pytest.mark.slow
def test_export_from_jax_round_trips_through_tensorflow_alone(tmp_path):
    """A JAX process exports (jax2tf); a process with TensorFlow alone serves the maps."""
    import tensorflow as tf

    env = _env("jax")
    result = subprocess.run([sys.executable, "-c", EXPORT, str(tmp_path)], capture_output=True,
                            text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-1] == "jax"
    maps = np.load(tmp_path / "maps.npz")
    x = tf.constant(maps["x"])
    for name in ("gradient", "gradcam", "dance"):
        loaded = tf.saved_model.load(str(tmp_path / name / "1"))
        scale = np.abs(maps[name]).max()
        served = loaded.signatures["explain"](inputs=x)
        np.testing.assert_allclose(served["saliency"].numpy(), maps[name], rtol=0,
                                   atol=1e-5 * scale, err_msg=name)
        targeted = loaded.signatures["explain_target"](inputs=x, target=tf.fill([5], 3))
        np.testing.assert_allclose(targeted["saliency"].numpy(), maps[name + "_target"],
                                   rtol=0, atol=1e-5 * scale, err_msg=name)
        # One input (a chunk padded inside the graph) and the predictions.
        single = loaded.signatures["explain"](inputs=x[:1])["saliency"].numpy()
        np.testing.assert_allclose(single, maps[name][:1], rtol=0, atol=1e-5 * scale)
        predictions = loaded.signatures["serving_default"](inputs=x)["predictions"].numpy()
        np.testing.assert_array_equal(predictions.argmax(1), served["target"].numpy())
    text = tf.saved_model.load(str(tmp_path / "text" / "1"))
    served = text.signatures["explain"](inputs=tf.constant(maps["ids"]))["saliency"].numpy()
    np.testing.assert_allclose(served, maps["text"], rtol=0, atol=1e-5 * np.abs(maps["text"]).max())
    words = text.signatures["explain_text"](text=tf.constant(["The film was NOT very good!"]))
    np.testing.assert_allclose(words["saliency"].numpy(), maps["sentence"], rtol=0,
                               atol=1e-5 * np.abs(maps["sentence"]).max())


MODELS = r"""
import json, sys
if sys.argv[2] != "tensorflow":
    sys.modules["tensorflow"] = None
import numpy as np, keras, keras_dance as kd
out = {}
errors = {}
text, _ = kd.datasets.load_text_model()
inputs = {
    "configurations_resnet": (kd.datasets.load_model("configurations_resnet"),
                              kd.datasets.make_configurations(2)[0]),
    "text_cnn": (text, kd.datasets.make_sentiment(3, seed=5)[0]),
    "cancer_mlp": (kd.datasets.load_model("cancer_mlp"), kd.datasets.load_cancer()[2][:4]),
}
#: Lighter settings than the defaults (parity does not need 2,000 masks): the suite's time.
LIGHT = {"integrated_gradients": {"steps": 16}, "smoothgrad": {"num_samples": 8},
         "squaregrad": {"num_samples": 8}, "vargrad": {"num_samples": 8},
         "rise": {"num_masks": 200}, "kernel_shap": {"num_samples": 300},
         "scorecam": {"max_channels": 16}}
for model_name, (model, x) in inputs.items():
    for name in kd.methods.general_method_names():
        key = f"{model_name}/{name}"
        method = {"name": name, "config": LIGHT.get(name, {})}
        try:
            out[key] = kd.Explainer(model, method=method, batch_size=64).explain(x)
        except (TypeError, ValueError) as error:
            errors[key] = str(error)
resnet, images = inputs["configurations_resnet"]
dance = kd.Explainer(resnet, decoys=kd.DecoyConfig(layer="block1_out", patch=16, steps=5),
                     batch_size=64)
out["configurations_resnet/dance"] = dance.explain(images)
# Mixed precision: the same weights under mixed_float16 and mixed_bfloat16 policies.
digits = kd.datasets.load_digits_model()
x = kd.datasets.load_digits()[2][:4]
for policy in ("mixed_float16", "mixed_bfloat16"):
    copy = keras.models.clone_model(digits, clone_function=lambda layer: layer.__class__.from_config(
        {**layer.get_config(), "dtype": policy}))
    copy.set_weights(digits.get_weights())
    assert copy.layers[0].compute_dtype == policy.split("_")[1], copy.layers[0].compute_dtype
    for name in ("gradient", "integrated_gradients", "gradcam"):
        out[f"{policy}/{name}"] = kd.Explainer(copy, method=name).explain(x, 1)
for name in ("gradient", "integrated_gradients", "gradcam"):
    out[f"float32/{name}"] = kd.Explainer(digits, method=name).explain(x, 1)
np.savez(sys.argv[1], **{k.replace("/", "__"): v for k, v in out.items()})
print(json.dumps(errors))
"""


@pytest.mark.heavy
def test_every_method_on_the_resnet_text_and_tabular_models_equals_tensorflow(tmp_path):
    """The parity suite beyond the digits CNN: every registered method on the
    configurations ResNet, the Kim text CNN and the cancer MLP (what a model cannot take
    is refused with the same message), DANCE on the ResNet, and mixed precision."""
    results = {}
    for backend in _installed(("tensorflow",) + OTHERS):
        out = tmp_path / f"{backend}.npz"
        stdout = _run(backend, MODELS, out, backend, timeout=900)
        results[backend] = (np.load(out), json.loads(stdout.strip().splitlines()[-1]))
    tf_maps, tf_errors = results.pop("tensorflow")
    for backend, (maps, errors) in results.items():
        _check_models(tf_maps, tf_errors, maps, errors, backend)


def _check_models(tf_maps, tf_errors, maps, errors, backend):
    assert errors == tf_errors
    assert set(maps.files) == set(tf_maps.files)
    models = ("configurations_resnet", "text_cnn", "cancer_mlp")
    explained = [key for key in tf_maps.files if key.split("__")[0] in models]
    assert len(explained) + len(tf_errors) == 3 * len(kd.methods.general_method_names()) + 1
    for key in explained:
        scale = np.abs(tf_maps[key]).max()
        assert np.all(np.isfinite(maps[key])) and scale > 0, key
        if key == "configurations_resnet__integrated_gradients":
            # With the default 50 steps, one of IG's 100 path points (image 1, alpha =
            # 15/49) has a ReLU whose input is within float32 rounding of 0: XLA's and
            # TensorFlow's kernels round it to opposite sides, and that point's gradient
            # differs by 0.85% of the scale (measured; the other 99 agree within 1e-6). A
            # ReLU network's gradient is discontinuous there: 0.13% of the map moved by
            # up to 4e-4 of its scale. Any path may meet such a point: allowed here.
            moved = np.abs(maps[key] - tf_maps[key]) > 1e-4 * scale
            assert moved.mean() < 0.005, (backend, moved.mean())
            np.testing.assert_allclose(maps[key], tf_maps[key], rtol=0,
                                       atol=1e-3 * scale, err_msg=f"{backend} {key}")
            continue
        if key == "configurations_resnet__kernel_shap":
            # KernelSHAP's φ is a least-squares fit to the model's outputs on 300
            # coalitions (LIGHT): it passes the outputs' own backend differences on,
            # amplified. Measured: the ResNet's logits (scale 10.4) differ by 7.6e-6 between
            # PyTorch and TensorFlow (4.8e-6 for JAX), and φ then by 2.3e-4 of its scale
            # on PyTorch. Allowed here: 5e-4 (every other map: 1e-4).
            np.testing.assert_allclose(maps[key], tf_maps[key], rtol=0,
                                       atol=5e-4 * scale, err_msg=f"{backend} {key}")
            continue
        np.testing.assert_allclose(maps[key], tf_maps[key], rtol=0, atol=1e-4 * scale,
                                   err_msg=f"{backend} {key}")
    # Half precision. A half-precision map differs from the float32 map by rounding
    # (bfloat16 keeps 8 significant bits, float16 11) amplified through the model's depth
    # and by ReLU gates that rounding flips; the kernels, and so the rounding, differ from
    # CPU to CPU (AVX512_BF16 or not) and backend to backend. What holds on any CPU: each
    # backend's map correlates with the float32 map above a floor (measured here: 0.9996+
    # under float16, 0.995+ under bfloat16), i.e. lies within the angle arccos(floor) of it
    # (correlation is the cosine between centred maps); two such maps then lie within
    # twice that angle of each other, whatever each CPU's half-precision kernels do. A
    # fixed 0.999 between backends held on one CPU and failed on another (0.9979).
    def correlation(a, b):
        return np.corrcoef(a.ravel(), b.ravel())[0, 1]

    for policy, floor in (("mixed_float16", 0.999), ("mixed_bfloat16", 0.99)):
        for name in ("gradient", "integrated_gradients", "gradcam"):
            key = f"{policy}__{name}"
            for each in (tf_maps, maps):
                assert each[key].dtype == np.float32 and np.all(np.isfinite(each[key]))
                assert correlation(each[key], each[f"float32__{name}"]) > floor, key
            # The float32 maps themselves agree within 1e-4 of the scale (checked above).
            np.testing.assert_allclose(maps[f"float32__{name}"], tf_maps[f"float32__{name}"],
                                       rtol=0, atol=1e-4 * np.abs(tf_maps[f"float32__{name}"]).max())


BREADTH = r"""
import json, sys
if sys.argv[2] != "tensorflow":
    sys.modules["tensorflow"] = None
import numpy as np, keras, keras_dance as kd
digits = kd.datasets.load_digits_model()
x = kd.datasets.load_digits()[2][:3]
out = {}
out["score_function"] = kd.Explainer(digits).explain(x, lambda logits: logits[:, 3] - logits[:, 5])
out["preprocess"] = kd.Explainer(digits, preprocess=lambda t: t / 255.0).explain(x * 255.0, 1)
out["competitive"] = kd.Explainer(
    digits, method=kd.methods.Competitive(kd.methods.IntegratedGradients(steps=8))).explain(x, 1)
config = kd.DecoyConfig(layer="conv2", patch=8, steps=5)
for aggregation in ("range", "patch_range", "mean"):
    out[f"dance_{aggregation}"] = kd.Explainer(digits, decoys=config, aggregation=aggregation,
                                               batch_size=64).explain(x[:2], 1)
constant = kd.DecoyConfig(layer="conv2", patch=8, kind="constant")
out["dance_constant"] = kd.Explainer(digits, decoys=constant, batch_size=64).explain(x[:2], 1)
text, _ = kd.datasets.load_text_model()
ids = kd.datasets.make_sentiment(2, seed=5)[0]
out["text_dance"] = kd.Explainer(text, decoys=kd.DecoyConfig(layer="conv3", patch=1, steps=6),
                                 pad_id=0, batch_size=64).explain(ids)
steps = kd.sanity.model_randomisation(kd.Explainer(digits), x[:2], targets=1, seed=0)
out["sanity"] = np.array([[step[key] for key in ("spearman_abs", "ssim")] for step in steps])
result = kd.attacks.attack(kd.Explainer(digits), x[:2], iterations=4, check_every=2)
out["attack_x"] = result.x_adv
out["attack_topk"] = result.topk_intersection
# Outputs with positions (a segmentation head): the class logit averaged, or over a region.
# The model is built once, on TensorFlow (the first to run), and loaded by the others.
import os
path = os.path.join(os.path.dirname(sys.argv[1]), "segmentation.keras")
if not os.path.exists(path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 2))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c")(inputs)
    keras.Model(inputs, keras.layers.Conv2D(3, 1, activation="softmax", name="seg")(h)).save(path)
segmentation = keras.models.load_model(path)
pixels = np.random.default_rng(0).uniform(size=(2, 8, 8, 2)).astype("float32")
mask = np.zeros((2, 8, 8), bool)
mask[0, 1:3, 2:5] = mask[1, 6:, :] = True
out["positions_class"] = kd.Explainer(segmentation).explain(pixels, targets=2)
out["positions_region"] = kd.Explainer(segmentation).explain(pixels, targets=(1, mask))
out["positions_dance"] = kd.Explainer(segmentation, decoys=kd.DecoyConfig(
    layer="c", patch=4, steps=3)).explain(pixels, targets=(0, mask[0]))
np.savez(sys.argv[1], **out)
print(keras.config.backend())
"""


@pytest.mark.heavy
def test_score_functions_preprocess_wrappers_dance_variants_sanity_and_attacks(tmp_path):
    """What the README shows beyond methods, the same on every backend: score functions,
    preprocess, the Competitive wrapper, DANCE's three aggregations, constant and text
    decoys, the model-randomisation sanity check, an interpretation attack and outputs
    with positions (whole-class and region targets, DANCE on them)."""
    results = {}
    for backend in _installed(("tensorflow",) + OTHERS):
        out = tmp_path / f"{backend}.npz"
        _run(backend, BREADTH, out, backend, timeout=900)
        results[backend] = np.load(out)
    tf_out = results.pop("tensorflow")
    # The sanity check re-initialises layers with their Keras initialisers, whose seeded
    # draws are each backend's own (Keras's RNGs differ): the same check, other weights.
    for backend, out in results.items():
        for sanity in (tf_out["sanity"], out["sanity"]):
            assert sanity.shape == (5, 2, 2) and np.all(np.abs(sanity) <= 1 + 1e-6)
        for key in sorted(set(tf_out.files) - {"sanity"}):
            scale = max(np.abs(tf_out[key]).max(), 1e-12)
            assert np.all(np.isfinite(out[key])), (backend, key)
            np.testing.assert_allclose(out[key], tf_out[key], rtol=0, atol=1e-4 * scale,
                                       err_msg=f"{backend} {key}")


MISSING = r"""
import sys
sys.modules[sys.argv[1]] = None  # as in an environment without that framework
import keras_dance as kd
print(kd.postprocess.__name__)  # import keras_dance itself works
try:
    kd.Explainer
except ImportError as error:
    print(error)
"""


@pytest.mark.parametrize("framework", OTHERS)
def test_asking_for_a_backend_whose_framework_is_missing_names_the_extra(framework):
    stdout = _run(framework, MISSING, framework)
    name, message = stdout.strip().splitlines()[-2:]
    assert name == "postprocess"
    assert message.startswith(f"Expected {framework!r} installed for the Keras backend")
    assert f"pip install 'keras-dance[{framework}]'" in message


EXAMPLES = r"""
import runpy, sys
sys.modules["tensorflow"] = None
sys.path.insert(0, "examples")  # the scripts import their shared _setup module
out = sys.argv[1]
runs = {"train_digits.py": [f"--out={out}/digits_cnn.keras", f"--data_dir={out}/data"],
        "train_ground_truth.py": [f"--out_dir={out}"],
        "train_text.py": [f"--out={out}/text_cnn.keras"],
        "train_configurations.py": [f"--out={out}/configurations_resnet.keras"],
        "train_scaat_digits.py": [f"--out={out}/digits_cnn_scaat.keras"],
        "train_mini_xception.py": [f"--out={out}/mini_xception.hdf5"],
        "train_text_transformer.py": [f"--out={out}/text_transformer.keras"],
        "train_vit.py": [f"--out_dir={out}"]}
for script, args in runs.items():
    sys.argv = [script, "--quick", *args]
    runpy.run_path(f"examples/{script}", run_name="__main__")
import keras
print("trained on", keras.config.backend())
"""


@pytest.mark.heavy
def test_the_shipped_models_training_scripts_run(tmp_path, other):
    """Every script in examples/ (their --quick smoke runs) on the backend, TensorFlow
    unimportable: each writes a model TensorFlow loads, with the shipped model's layers."""
    assert _run(other, EXAMPLES, tmp_path, timeout=900).split()[-1] == other
    names = ["digits_cnn", "shapes_cnn", "motifs_cnn", "cancer_mlp", "text_cnn",
             "configurations_resnet", "digits_cnn_scaat"]
    for name in names:
        trained = keras.models.load_model(tmp_path / f"{name}.keras")
        shipped = kd.datasets.load_model(name)
        assert [layer.name for layer in trained.layers] == [layer.name for layer in shipped.layers]
        x = np.zeros((2,) + tuple(shipped.inputs[0].shape[1:]), shipped.inputs[0].dtype)
        assert np.all(np.isfinite(trained.predict(x, verbose=0)))
    assert len(list((tmp_path / "data").glob("digit_*.png"))) == 5
    # Built from keras_hub layers (kd.datasets' loader imports keras_hub for them).
    trained = kd.datasets._load(tmp_path / "text_transformer.keras")
    shipped, _ = kd.datasets.load_text_transformer()
    assert [layer.name for layer in trained.layers] == [layer.name for layer in shipped.layers]
    assert np.all(np.isfinite(trained.predict(np.ones((2, 16), "int32"), verbose=0)))
    trained = kd.datasets._load(tmp_path / "shapes_vit.keras")
    shipped = kd.datasets.load_model("shapes_vit")
    assert ([type(layer).__name__ for layer in trained.layers]
            == [type(layer).__name__ for layer in shipped.layers])
    assert np.all(np.isfinite(trained.predict(np.zeros((2, 32, 32, 1), "float32"), verbose=0)))
    # The legacy HDF5 file (its layers' automatic names depend on what the process built
    # before it, so the layer types are compared).
    trained = keras.models.load_model(tmp_path / "mini_xception.hdf5")
    shipped = kd.datasets.load_model("mini_xception")
    assert ([type(layer).__name__ for layer in trained.layers]
            == [type(layer).__name__ for layer in shipped.layers])
    assert np.all(np.isfinite(trained.predict(np.zeros((2, 64, 64, 1), "float32"), verbose=0)))


BUCKETS = r"""
import sys
if sys.argv[1] != "tensorflow":
    sys.modules["tensorflow"] = None
import numpy as np, keras, keras_dance as kd

class Counting(kd.methods.IntegratedGradients):
    # Called while the backend traces the chunk (once per compilation on JAX and
    # TensorFlow; per call on eager PyTorch).
    traces = 0

    def __call__(self, *args, **kwargs):
        Counting.traces += 1
        return super().__call__(*args, **kwargs)

digits = kd.datasets.load_digits_model()
x = kd.datasets.load_digits()[2][:48]
targets = np.arange(len(x)) % 10
explainer = kd.Explainer(digits, method=Counting(steps=4), batch_size=64)  # 16 per pass
assert explainer.inputs_per_pass == 16, explainer.inputs_per_pass
sizes = [8, 5, 1, 3, 16, 17, 40, 2, 7, 9, 11, 33, 6, 4, 13]
start, maps = 0, []
for size in sizes:
    rows = np.arange(start, start + size) % len(x)
    maps.append(explainer.explain(x[rows], targets[rows]))
    start += size
whole = kd.Explainer(digits, method=kd.methods.IntegratedGradients(steps=4),
                     batch_size=64).explain(x, targets)
rows = np.arange(sum(sizes)) % len(x)
got = np.concatenate(maps)
scale = np.abs(whole).max()
np.testing.assert_allclose(got, whole[rows], rtol=0, atol=1e-5 * scale)
predicted = explainer.explain(x[:3], return_details=True)[1]["targets"]  # -1 rows padded too
np.testing.assert_array_equal(predicted, np.argmax(digits.predict(x[:3], verbose=0), 1))
print("traces", Counting.traces)
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_a_sequence_of_batch_sizes_compiles_a_bounded_number_of_times(backend):
    """15 batches of 14 different sizes (1 to 40, 16 inputs per pass): JAX compiles the
    chunk for at most ⌈log₂ 16⌉ + 1 = 5 shapes (the last chunk padded to a power of two;
    padding rows never reach the maps), TensorFlow traces once; the maps equal one call
    on the whole set."""
    pytest.importorskip(backend)
    traces = int(_run(backend, BUCKETS, backend).split()[-1])
    assert 1 <= traces <= (5 if backend == "jax" else 1), traces


XCEPTION = r"""
import sys
if sys.argv[2] != "tensorflow":
    sys.modules["tensorflow"] = None
import numpy as np, keras, keras_dance as kd
model = kd.datasets.load_model("mini_xception")  # legacy HDF5, as a pretrained model comes
x = kd.datasets.load_digits(size=64)[2][:8]
targets = np.arange(8) % 10
out = {"logits": keras.ops.convert_to_numpy(kd.Explainer(model).logits_model(x))}
methods = {"gradient": "gradient",
           "integrated_gradients": {"name": "integrated_gradients", "config": {"steps": 16}},
           "smoothgrad": {"name": "smoothgrad", "config": {"num_samples": 8}},
           "gradcam": {"name": "gradcam", "config": {"layer": "add_3"}},
           "occlusion": {"name": "occlusion", "config": {"patch": 8}}}
for name, method in methods.items():
    out[name] = kd.Explainer(model, method=method).explain(x, targets)
dance = kd.Explainer(model, decoys=kd.DecoyConfig(layer="conv2d", patch=16, steps=20),
                     batch_size=256)
out["dance"], details = dance.explain(x[:2], targets[:2], return_details=True)
out["feasible"] = details["feasible_fraction"]
np.savez(sys.argv[1], **out)
print(keras.config.backend())
"""


@pytest.mark.heavy
def test_a_legacy_hdf5_mini_xception_gives_tensorflows_maps(tmp_path):
    """A real architecture from a legacy .hdf5 file (BatchNorm, SeparableConv2D, 1×1
    stride-2 shortcuts, max-pooling, a softmax head): what holds between backends, and
    why the gradient family holds less tightly (benchmarks/parity_layers.py, docs/parity.md).
    """
    results = {}
    for backend in _installed(("tensorflow",) + OTHERS):
        out = tmp_path / f"{backend}.npz"
        assert _run(backend, XCEPTION, out, backend, timeout=900).split()[-1] == backend
        results[backend] = np.load(out)
    tf_out = results.pop("tensorflow")
    assert np.all(tf_out["feasible"] > 0.5)  # DANCE's decoys exist: its map is not empty
    for backend, out in results.items():
        def relative(key):
            return np.abs(out[key] - tf_out[key]).max() / np.abs(tf_out[key]).max()

        # The forward pass: every layer agrees within float32 rounding (measured: logits
        # 7.2e-7 JAX, 9.5e-7 PyTorch), so do the predictions, and so do the maps made of
        # forward passes and of gradients taken after the last max-pool (measured:
        # occlusion 3.7e-7 / 5.1e-7, Grad-CAM 7.6e-7 / 1.6e-6).
        assert relative("logits") < 1e-5, (backend, relative("logits"))
        np.testing.assert_array_equal(out["logits"].argmax(1), tf_out["logits"].argmax(1))
        for key in ("occlusion", "gradcam"):
            assert relative(key) < 1e-5, (backend, key, relative(key))
        # Gradients through the max-pools: a max-pool sends its gradient to the argmax of
        # each 3x3 window, and on the digits' constant background 12% of the first pool's
        # windows hold near-ties (top two within 1e-6 of the scale). Float32 rounding,
        # which differs between backends by ~1e-7, breaks a few of them the other way (2
        # of 115,200 windows on PyTorch for the plain gradient), moving that window's
        # gradient to its neighbour. Measured largest differences (of the map's scale):
        # gradient 3.0e-7 JAX / 1.0e-3 PyTorch, IG 2.0e-3 / 3.1e-3, SmoothGrad 3.6e-3 /
        # 6.5e-3, DANCE 6.0e-4 / 2.3e-3 (IG, SmoothGrad and DANCE evaluate many more
        # points, so more windows flip). Allowed: 2e-2 of the scale, on a small part of
        # the map: the rest agrees within 1e-4.
        for key in ("gradient", "integrated_gradients", "smoothgrad", "dance"):
            scale = np.abs(tf_out[key]).max()
            moved = np.abs(out[key] - tf_out[key]) > 1e-4 * scale
            assert relative(key) < 2e-2, (backend, key, relative(key))
            assert moved.mean() < 0.02, (backend, key, moved.mean())


NO_TENSORFLOW = r"""
import sys
import numpy as np, keras, keras_dance as kd
model = kd.datasets.load_digits_model()
x = kd.datasets.load_digits()[2][:2]
kd.Explainer(model, method="smoothgrad").explain(x)
kd.Explainer(model, decoys=kd.DecoyConfig(layer="conv2", patch=8, steps=2)).explain(x)
kd.metrics.deletion(model, x, np.ones_like(x), steps=4)
print(keras.config.backend(), "tensorflow" in sys.modules)
"""


@pytest.mark.slow
def test_explaining_on_another_backend_does_not_import_tensorflow(other):
    """TensorFlow installed and importable, but never imported: Keras's serialisation
    (reached when the explainer copies the output layer) would import it to ask whether
    an object is a tf.TensorShape, about 0.5 GB of a JAX or PyTorch process."""
    assert _run(other, NO_TENSORFLOW).split()[-2:] == [other, "False"]


CACHED_WORKER = r"""
import sys, time
sys.modules["tensorflow"] = None
import numpy as np, keras_dance as kd
spec = kd.distributed.ExplainerSpec("saved_models/digits_cnn.keras", method="gradient",
                                    compilation_cache=sys.argv[1])
x = kd.datasets.load_digits()[2][:3]
records, errors = spec.load().explain(["a", "b", "c"], list(x))
assert not errors
np.save(sys.argv[2], records["map"])
import jax
print(jax.config.jax_compilation_cache_dir)
"""


@pytest.mark.slow
def test_jax_workers_share_a_persistent_compilation_cache(tmp_path):
    """ExplainerSpec(compilation_cache=DIR): the first JAX worker fills the directory, a
    second one (a fresh process) loads from it, and the maps are the same."""
    pytest.importorskip("jax")
    cache = tmp_path / "cache"
    first = _run("jax", CACHED_WORKER, cache, tmp_path / "first.npy")
    assert first.split()[-1] == str(cache)
    entries = sorted(p.name for p in cache.iterdir())
    assert entries  # compiled functions written
    _run("jax", CACHED_WORKER, cache, tmp_path / "second.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "first.npy"), np.load(tmp_path / "second.npy"))
    # The second worker compiled nothing new that the first had compiled.
    assert set(entries) <= {p.name for p in cache.iterdir()}
    # The command line's flag, on JAX: a job's worker fills a fresh cache directory.
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for i, image in enumerate(kd.datasets.load_digits()[2][:3]):
        np.save(inputs / f"{i}.npy", image)
    flagged = tmp_path / "flagged"
    result = subprocess.run(
        [sys.executable, "-m", "keras_dance.cli", "explain-dataset",
         str(ROOT / "saved_models" / "digits_cnn.keras"), f"{inputs}/*.npy",
         f"--out={tmp_path / 'job'}", f"--compilation_cache={flagged}", "--backend=jax"],
        capture_output=True, text=True, timeout=600, env=_env("tensorflow"), cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert any(flagged.iterdir())
    with pytest.raises(TypeError, match="Expected `compilation_cache` to be None or a directory"):
        kd.distributed.ExplainerSpec(str(ROOT / "saved_models" / "digits_cnn.keras"),
                                     compilation_cache=3)
