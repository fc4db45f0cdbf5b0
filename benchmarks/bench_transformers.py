"""Explaining a BERT-base-sized classifier: ours against a bare compiled function of the
same arithmetic, on TensorFlow, JAX and PyTorch, and memory against the knob.

A keras_hub ``BertTextClassifier`` with BERT-base's configuration (12 layers, hidden 768,
12 heads, intermediate 3072; random weights: no downloads) on ``--length`` tokens. Per
backend, in its own process: time per text of gradient×input and Integrated Gradients
(``--steps`` points) at the token embedding, ours (``kd.Explainer``) and bare — the
framework's own autodiff (``tf.GradientTape`` in a ``tf.function``, ``jax.jit(jax.grad)``,
``torch.autograd.grad``) of the same score through the same model, the embedding's output
replaced the same way, the integration points in one batch of ``--batch`` rows — with the
ratio. Then the largest resident size of a process explaining with IG at two knob values
(``batch_size``), each in its own process: memory should follow the knob, not the steps.

Run: .venv/bin/python benchmarks/bench_transformers.py            (about 15 minutes, 2 cores)
     .venv/bin/python benchmarks/bench_transformers.py --quick    (a tiny configuration)
"""

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, time
import numpy as np, keras, keras_hub
import keras_dance as kd
from keras_dance import _inputs
settings = json.loads(sys.argv[1])
keras.utils.set_random_seed(0)
c = settings["config"]
backbone = keras_hub.models.BertBackbone(vocabulary_size=30522, num_layers=c["layers"],
    num_heads=c["heads"], hidden_dim=c["hidden"], intermediate_dim=c["intermediate"],
    max_sequence_length=settings["length"], dropout=0.0)
model = keras_hub.models.BertTextClassifier(backbone, num_classes=2, dropout=0.0)
length, rng = settings["length"], np.random.default_rng(0)
ids = rng.integers(1000, 30000, (1, length)).astype("int32")
ids[0, 0], ids[0, -1] = 101, 102
x = {"token_ids": ids, "padding_mask": np.ones_like(ids), "segment_ids": np.zeros_like(ids)}
out = {"backend": keras.config.backend()}
if settings["mode"] == "memory":
    e = kd.Explainer(model, method=kd.methods.IntegratedGradients(steps=settings["steps"]),
                     batch_size=settings["knob"], input_shape=(length,))
    e.explain(x, 1)
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out)); sys.exit()
layer = backbone.get_layer("token_embedding")
steps, batch = settings["steps"], settings["batch"]
alphas = np.linspace(0, 1, steps).astype("float32")
weights = np.full(steps, 1 / (steps - 1), "float32"); weights[[0, -1]] *= 0.5
tokens = {k: keras.ops.convert_to_tensor(v) for k, v in x.items()}
embedded = keras.ops.convert_to_numpy(layer(tokens["token_ids"]))

def score(z):  # the class-1 logit of each row of embedded sequences z (rows, L, E)
    rows = z.shape[0]
    inputs = {k: keras.ops.repeat(v, rows, axis=0) for k, v in tokens.items()}
    with _inputs.replaced(layer, z, integer_inputs=True):
        return model(inputs, training=False)[:, 1]

backend = keras.config.backend()
if backend == "tensorflow":
    import tensorflow as tf
    @tf.function
    def grad(z):
        with tf.GradientTape() as tape:
            tape.watch(z)
            total = tf.reduce_sum(score(z))
        return tape.gradient(total, z)
    to = tf.constant
elif backend == "jax":
    import jax
    grad = jax.jit(jax.grad(lambda z: score(z).sum()))
    to = jax.numpy.asarray
else:
    import torch
    def grad(z):
        z = z.clone().requires_grad_(True)
        return torch.autograd.grad(score(z).sum(), z)[0]
    to = torch.as_tensor

def bare_gxi():
    return np.asarray(keras.ops.convert_to_numpy(grad(to(embedded)))) * embedded

def bare_ig():
    total = np.zeros_like(embedded)
    for start in range(0, steps, batch):
        a = alphas[start:start + batch]
        points = a[:, None, None] * embedded
        g = np.asarray(keras.ops.convert_to_numpy(grad(to(points))))
        total += (weights[start:start + batch, None, None] * g).sum(0, keepdims=True)
    return total * embedded

def timed(function, repeats=settings["repeats"]):
    function()
    times = []
    for _ in range(repeats):
        begin = time.perf_counter(); function(); times.append(time.perf_counter() - begin)
    return float(np.median(times))

for name, method, bare in (("gradient_x_input", "gradient_x_input", bare_gxi),
                           ("integrated_gradients", kd.methods.IntegratedGradients(steps=steps),
                            bare_ig)):
    explainer = kd.Explainer(model, method=method, batch_size=batch, input_shape=(length,),
                             token_reduction="sum")
    ours = timed(lambda: explainer.explain(x, 1))
    plain = timed(bare)
    diff = np.abs(explainer.explain(x, 1)[0] - bare().sum(-1)[0]).max()
    out[name] = {"ours_s": ours, "bare_s": plain, "ratio": ours / plain,
                 "max_diff_over_scale": float(diff / np.abs(bare().sum(-1)).max())}
print(json.dumps(out))
"""


def child(backend, settings):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", CHILD, json.dumps(settings)],
                            capture_output=True, text=True, env=env, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"{backend}: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    args = parser.parse_args()
    config = dict(layers=12, heads=12, hidden=768, intermediate=3072)
    if args.quick:
        config = dict(layers=2, heads=2, hidden=32, intermediate=64)
        args.length, args.steps, args.repeats = 16, 8, 1
    settings = dict(config=config, length=args.length, steps=args.steps, batch=args.batch,
                    repeats=args.repeats, mode="time")
    print(f"BERT configuration {config}, {args.length} tokens, IG {args.steps} steps, "
          f"{args.batch} rows per pass; median of {args.repeats} warm calls per text")
    print("| backend | method | ours (s/text) | bare (s/text) | ours / bare | max |diff| / scale |")
    print("|---|---|---:|---:|---:|---:|")
    for backend in args.backends.split(","):
        out = child(backend, settings)
        for name in ("gradient_x_input", "integrated_gradients"):
            r = out[name]
            print(f"| {backend} | {name} | {r['ours_s']:.3f} | {r['bare_s']:.3f} | "
                  f"{r['ratio']:.2f}× | {r['max_diff_over_scale']:.1e} |", flush=True)
    print("\nlargest resident size, IG, one text (each in its own process, TensorFlow):")
    for knob in (args.batch // 2 or 1, args.batch * 2):
        out = child("tensorflow", dict(settings, mode="memory", knob=knob))
        print(f"batch_size={knob}: {out['max_rss_mb']:.0f} MB", flush=True)


if __name__ == "__main__":
    main()
