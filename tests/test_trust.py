"""Trust on real models: nothing a user's model meets may abort the Python process.

TensorFlow 2.21's oneDNN kernels abort the interpreter (a segfault or a glibc malloc
assertion, no Python exception) when an *eager* gradient tape computes the filter
gradient of a 1×1 stride-2 convolution at some shapes (e.g. a 60×60×8 input; seen on a
CPU with AVX-512; this suite's own 2-core machine survives it). keras-dance therefore
differentiates a user's model only inside compiled graphs, where the filter gradient
nobody asked for is pruned. These tests run in subprocesses, so that a crash fails the
test instead of killing the test worker, and they check the rule itself on every CPU:
no ``GradientTape.gradient`` runs eagerly while the library works.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

EAGER_TAPES = r"""
import sys, traceback
import numpy as np, keras, tensorflow as tf
from tensorflow.python.eager import backprop
import keras_dance as kd

eager = []
original = backprop.GradientTape.gradient

def watched(self, *args, **kwargs):
    if tf.executing_eagerly():  # an eager tape: the kernels run now, op by op
        eager.append("".join(traceback.format_stack(limit=8)))
    return original(self, *args, **kwargs)

backprop.GradientTape.gradient = watched

# The layer that aborts TensorFlow 2.21 on some CPUs: a 1x1 stride-2 convolution on
# 60x60 inputs with few channels (a mini-Xception's shortcut), and a softmax head.
keras.utils.set_random_seed(0)
inputs = keras.Input((60, 60, 8))
h = keras.layers.Conv2D(16, 1, strides=2, padding="same", use_bias=False, name="shortcut")(inputs)
h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(h)
h = keras.layers.GlobalAveragePooling2D()(h)
model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(h))
x = np.random.default_rng(0).uniform(size=(2, 60, 60, 8)).astype("float32")

LIGHT = {"integrated_gradients": {"steps": 4}, "smoothgrad": {"num_samples": 2},
         "squaregrad": {"num_samples": 2}, "vargrad": {"num_samples": 2},
         "rise": {"num_masks": 16}, "kernel_shap": {"num_samples": 300},
         "occlusion": {"patch": 20}, "scorecam": {"max_channels": 4}}
for name in kd.methods.general_method_names():
    config = dict(LIGHT.get(name, {}))
    if "cam" in name:
        config["layer"] = "conv"
    maps = kd.Explainer(model, method={"name": name, "config": config}).explain(x, 1)
    assert maps.shape == x.shape and np.all(np.isfinite(maps)), name
    print("method", name)
explainer = kd.Explainer(model, method=kd.methods.Gradient(),
                         decoys=kd.DecoyConfig(layer="shortcut", patch=30, steps=2))
maps = explainer.explain(x[:1], 1)
assert np.all(np.isfinite(maps))
print("dance")
explainer = kd.Explainer(model)
maps = explainer.explain(x, lambda logits: logits[:, 2])  # a score function, probed
print("deletion", kd.metrics.deletion(model, x, maps, [1, 2], steps=4).shape)
print("fidelity", kd.metrics.fidelity(model, x, maps, [1, 2]).shape)
steps = kd.sanity.model_randomisation(explainer, x[:1], targets=1, seed=0)
print("sanity", len(steps))
result = kd.attacks.attack(explainer, x[:1], iterations=2, check_every=1)
print("attack", result.x_adv.shape)
trainer = kd.training.SCAAT(model, epsilon=0.05)
trainer.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
trainer.fit(x, np.array([0, 1]), epochs=1, batch_size=2, verbose=0)
print("scaat")
print("eager tapes", len(eager))
for stack in eager[:3]:
    print(stack)
"""


@pytest.mark.slow  # make test runs it (30 s: a fresh TensorFlow process tracing 15 methods)
def test_no_eager_gradient_tape_touches_a_model_on_tensorflow():
    """Every registered method, DANCE, a score function, two metrics, the sanity check, an
    attack and a SCAAT step on a model with the aborting layer, in a subprocess: it must
    exit cleanly (a crash fails here, not the worker), and no gradient tape may run
    eagerly (so the rule holds on CPUs where the kernel does not crash)."""
    result = subprocess.run([sys.executable, "-c", EAGER_TAPES], capture_output=True,
                            text=True, timeout=900, cwd=ROOT)
    assert result.returncode == 0, (result.returncode, result.stderr[-3000:])
    lines = result.stdout.splitlines()
    assert sum(line.startswith("method ") for line in lines) >= 15
    for step in ("dance", "scaat", "sanity 3", "attack (1, 60, 60, 8)"):
        assert step in lines, (step, result.stdout[-2000:])
    assert "eager tapes 0" in lines, result.stdout[-4000:]
