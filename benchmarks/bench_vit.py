"""Explaining a ViT-B/16: ours against a bare compiled function of the same arithmetic,
and DANCE's per-patch decoy solve against the whole-model solve, on TensorFlow.

A keras_hub ``ViTImageClassifier`` with ViT-B/16's configuration (12 layers, hidden 768,
12 heads, MLP 3072, 224×224 images, patch 16; random weights: no downloads), one image.
Per method, ours (``kd.Explainer``, after a warm-up call) and bare — ``tf.GradientTape``
inside one ``tf.function`` over the same model, the same layer read through the same
interception (``kd._inputs``), the same arithmetic written out — timed over ``--repeats``
calls, with the ratio:

- gradient; Integrated Gradients (``--steps`` points, ``--batch`` rows per pass);
- Grad-CAM on the token grid at the last block's ``ln_1``;
- attention rollout and gradient-weighted attention over every block's probabilities.

Then decoy generation (``generate_decoys``) at the patch embedding (``--dance_image``,
patch 16): each problem on its own patch (receptive-field crops, the default) against
the same layer on the full input (``crop=False``) and against ``F_l`` read from the whole
model's call (what a sublayer got before; TensorFlow prunes what the layer's output does
not need, so this is close to the full-input solve there).

First, the largest resident size of a fresh process explaining with gradient-weighted
attention (8 images at ``batch_size`` 1 and 8, 2 images at 1) and Integrated Gradients
(16 and 64 steps at ``batch_size`` 8, 64 steps at 32): memory should follow the knob.

Run: .venv/bin/python benchmarks/bench_vit.py            (about 15 minutes, 2 cores)
     .venv/bin/python benchmarks/bench_vit.py --memory_only
     .venv/bin/python benchmarks/bench_vit.py --quick    (a tiny configuration)
"""

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_dance as kd  # noqa: E402
from keras_dance import _graph, _inputs, _vit  # noqa: E402


def build(image, patch, layers, heads, hidden, mlp):
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(image, image, 3), patch_size=patch, num_layers=layers, num_heads=heads,
        hidden_dim=hidden, mlp_dim=mlp)
    return keras_hub.models.ViTImageClassifier(backbone, num_classes=10)


def timed(function, repeats):
    function()  # warm-up: tracing and compiling
    start = time.perf_counter()
    for _ in range(repeats):
        out = function()
    return (time.perf_counter() - start) / repeats, out


def bare_functions(model, steps, batch):
    """The same arithmetic, written against TensorFlow directly."""
    layout = _vit.layout(model)
    norm = _graph.find_layer(model, _vit.default_layer(model, layout))[1]
    attentions = [layer for _, layer in _graph.sublayer_paths(model)
                  if isinstance(layer, keras.layers.MultiHeadAttention)]

    @tf.function
    def gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = model(x, training=False)[:, 1]
        return tape.gradient(score, x)

    alphas = tf.linspace(0.0, 1.0, steps)
    weights = np.full(steps, 1 / (steps - 1), "float32")
    weights[[0, -1]] *= 0.5

    @tf.function
    def integrated(x):
        total = tf.zeros_like(x)
        for start in range(0, steps, batch):
            a = alphas[start:start + batch][:, None, None, None]
            with tf.GradientTape() as tape:
                points = a * x
                tape.watch(points)
                score = tf.reduce_sum(model(points, training=False)[:, 1])
            grads = tape.gradient(score, points)
            total += tf.reduce_sum(grads * weights[start:start + batch, None, None, None], 0,
                                   keepdims=True)
        return total * x

    @tf.function
    def gradcam(x):
        box = []
        with tf.GradientTape() as tape:
            def watch(value):
                tape.watch(value)
                return value
            with _inputs.recorded(norm, box, change=watch):
                score = model(x, training=False)[:, 1]
        activations = box[0]
        grads = tape.gradient(score, activations)
        a, g = (_vit.to_grid(t, layout.prefix, layout.grid) for t in (activations, grads))
        cam = tf.nn.relu(tf.reduce_sum(a * tf.reduce_mean(g, (1, 2), keepdims=True), -1))
        return kd.backend.resize_aligned(cam, x.shape[1:3])[..., None]

    def probabilities(x, change=None):
        box = []
        import contextlib
        with contextlib.ExitStack() as stack:
            for layer in attentions:
                stack.enter_context(_inputs.explicit_attention(layer, box, change))
            logits = model(x, training=False)
        return box, logits

    def to_map(relevance, x):
        row = relevance[:, 0, layout.prefix:]
        cam = tf.reshape(row, (-1,) + layout.grid)
        return kd.backend.resize_aligned(cam, x.shape[1:3])[..., None]

    @tf.function
    def rollout(x):
        box, _ = probabilities(x)
        relevance = None
        for a in box:
            mixed = tf.reduce_mean(a, 1) + tf.eye(a.shape[-1])
            mixed /= tf.reduce_sum(mixed, -1, keepdims=True)
            relevance = mixed if relevance is None else mixed @ relevance
        return to_map(relevance, x)

    @tf.function
    def attention_gradient(x):
        with tf.GradientTape() as tape:
            def watch(value):
                tape.watch(value)
                return value
            box, logits = probabilities(x, watch)
            score = logits[:, 1]
        grads = tape.gradient(score, box)
        relevance = tf.eye(box[0].shape[-1])[None]
        for a, g in zip(box, grads):
            relevance = relevance + tf.reduce_mean(tf.nn.relu(g * a), 1) @ relevance
        return to_map(relevance, x)

    return {"gradient": gradient, "integrated_gradients": integrated, "gradcam": gradcam,
            "attention_rollout": rollout, "attention_gradient": attention_gradient}


MEMORY = r"""
import json, resource, sys
import numpy as np, keras_dance as kd
sys.path.insert(0, sys.argv[2])
import bench_vit
settings = json.loads(sys.argv[1])
model = bench_vit.build(**settings["config"])
x = np.random.default_rng(0).uniform(size=(settings["images"],) + model.inputs[0].shape[1:])
method = kd.methods.get(settings["method"])
kd.Explainer(model, method=method, batch_size=settings["knob"]).explain(
    x.astype("float32"), 1)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def memory(config, cases):
    """The largest resident size (MB) of a fresh process explaining with each
    ``(method, images, knob)``: it should follow the knob, not the images or steps."""
    import json
    import subprocess
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    for method, images, knob in cases:
        settings = {"config": config, "method": method, "images": images, "knob": knob}
        result = subprocess.run([sys.executable, "-c", MEMORY, json.dumps(settings), here],
                                capture_output=True, text=True, check=True)
        print(f"  {json.dumps(method)}, {images} images, batch_size={knob}: "
              f"{float(result.stdout.split()[-1]):.0f} MB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dance_image", type=int, default=224)
    parser.add_argument("--decoy_steps", type=int, default=20)
    parser.add_argument("--memory_only", action="store_true",
                        help="only the largest resident size against the knob")
    args = parser.parse_args()
    if args.quick:
        config = dict(image=32, patch=8, layers=2, heads=2, hidden=16, mlp=32)
        args.steps, args.repeats, args.dance_image, args.decoy_steps = 8, 2, 32, 10
    else:
        config = dict(image=224, patch=16, layers=12, heads=12, hidden=768, mlp=3072)
    print("largest resident size of a process (TensorFlow):")
    ig = {"name": "integrated_gradients", "config": {"steps": 64 if not args.quick else 8}}
    small_ig = {"name": "integrated_gradients", "config": {"steps": 16 if not args.quick else 4}}
    memory(config, [("attention_gradient", 8, 1), ("attention_gradient", 8, 8),
                    ("attention_gradient", 2, 1), (small_ig, 1, 8), (ig, 1, 8),
                    (ig, 1, 32)])
    if args.memory_only:
        return
    model = build(**config)
    x = np.random.default_rng(0).uniform(size=(1, config["image"], config["image"], 3))
    x = x.astype("float32")
    bare = bare_functions(model, args.steps, args.batch)
    methods = {"gradient": "gradient",
               "integrated_gradients": kd.methods.IntegratedGradients(
                   steps=args.steps, baseline=0.0),
               "gradcam": "gradcam", "attention_rollout": "attention_rollout",
               "attention_gradient": "attention_gradient"}
    print(f"ViT {config}, {tf.config.threading.get_inter_op_parallelism_threads() or 'all'} "
          f"threads, TensorFlow, one image, mean of {args.repeats} calls after a warm-up")
    print(f"{'method':24s} {'ours s':>9s} {'bare s':>9s} {'ratio':>7s} {'max diff/scale':>15s}")
    for name, method in methods.items():
        explainer = kd.Explainer(model, method=method, batch_size=args.batch)
        ours_time, ours = timed(lambda: explainer.explain(x, 1), args.repeats)
        bare_time, theirs = timed(lambda: bare[name](tf.constant(x)).numpy(), args.repeats)
        ours_map = ours[..., :1] if theirs.shape[-1] == 1 else ours
        difference = np.abs(ours_map - theirs).max() / max(np.abs(theirs).max(), 1e-12)
        print(f"{name:24s} {ours_time:9.3f} {bare_time:9.3f} {ours_time / bare_time:6.2f}x "
              f"{difference:15.2e}")
    # DANCE at the patch embedding: per-patch crops against the whole model's call.
    small = build(image=args.dance_image, patch=config["patch"], layers=config["layers"],
                  heads=config["heads"], hidden=config["hidden"], mlp=config["mlp"])
    xs = np.random.default_rng(1).uniform(size=(1, args.dance_image, args.dance_image, 3))
    xs = xs.astype("float32")
    steps = args.decoy_steps
    crops = kd.Explainer(small, decoys=kd.DecoyConfig(layer="patch_embedding", steps=steps))
    full = kd.Explainer(small, decoys=kd.DecoyConfig(layer="patch_embedding", steps=steps,
                                                     crop=False))
    view = crops.model_view
    whole = kd.Explainer(small, decoys=kd.DecoyConfig(
        layer=view.layer_function("patch_embedding"), patch=config["patch"], steps=steps))
    print(f"\ndecoys at the patch embedding, {args.dance_image}x{args.dance_image} image, "
          f"{crops.decoys.num_decoys} problems, {steps} steps ({crops.decoys.reason}):")
    crop_time, (crop_decoys, _) = timed(lambda: crops.generate_decoys(xs), args.repeats)
    for name, other in [("the layer on the full input (crop=False)", full),
                        ("F_l read from the whole model's call", whole)]:
        other_time, (decoys, _) = timed(lambda: other.generate_decoys(xs), args.repeats)
        print(f"  per patch {crop_time:.3f} s, {name} {other_time:.3f} s: "
              f"{other_time / crop_time:.1f}x; largest decoy difference "
              f"{np.abs(crop_decoys - decoys).max():.2e}")


if __name__ == "__main__":
    main()
