"""Every method and DANCE on TensorFlow and on JAX, and ours on JAX against bare JAX.

One run, one machine: each backend runs in its own process (the Keras backend is fixed at
import). Per backend: time per input of every registered method (defaults) on the shipped
digits CNN, and DANCE (digits, layer conv2; the configurations ResNet, block1_out). On
JAX, ours against a bare ``jax.jit`` function doing the same arithmetic: the gradient
family as ``jax.vmap(jax.grad(...))`` over ``stateless_call``, SmoothGrad and Integrated
Gradients as the same loops over samples and steps.

Run: .venv/bin/python benchmarks/bench_backends.py [--batch 32] [--repeats 5]
"""

import argparse
import json
import os
import subprocess
import sys
import time


def median_time(function, repeats):
    function()  # compile / warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def worker(batch, repeats):
    import numpy as np

    import keras_dance as kd

    model = kd.datasets.load_digits_model()
    x = kd.datasets.load_digits()[2][:batch]
    targets = np.arange(batch) % 10
    result = {"methods": {}, "bare": {}}
    for name in kd.methods.METHOD_NAMES:
        method = {"name": name, "config": {"layer": "conv3"}} if "cam" in name else name
        explainer = kd.Explainer(model, method=method)
        result["methods"][name] = median_time(
            lambda: explainer.explain(x, targets), repeats) / batch
    dance = kd.Explainer(model, decoys=kd.DecoyConfig(layer="conv2", patch=4))
    result["dance_digits"] = median_time(lambda: dance.explain(x[:8], targets[:8]), 1) / 8
    resnet = kd.datasets.load_model("configurations_resnet")
    images = kd.datasets.make_configurations(2)[0]
    config = kd.DecoyConfig(layer="block1_out", patch=8)
    dance = kd.Explainer(resnet, decoys=config)
    result["dance_resnet"] = median_time(lambda: dance.explain(images), 1) / len(images)
    import keras

    if keras.config.backend() == "jax":
        result["bare"] = bare_jax(model, x, targets, repeats)
    print(json.dumps(result))


def bare_jax(model, x, targets, repeats):
    """The same arithmetic as ours on JAX, written directly: per input, ``jax.grad`` of
    the target logit over ``stateless_call`` (the logits: the softmax layer's linear
    copy, as the explainer differentiates), vmapped and jitted."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import keras_dance as kd

    logits = kd.Explainer(model).logits_model
    trainable = [v.value for v in logits.trainable_variables]
    frozen = [v.value for v in logits.non_trainable_variables]

    def score(row, target):
        out, _ = logits.stateless_call(trainable, frozen, row[None], training=False)
        return out[0, target]

    grad = jax.vmap(jax.grad(score))
    xs, ts = jnp.asarray(x), jnp.asarray(targets)
    span = (xs.reshape(len(x), -1).max(1) - xs.reshape(len(x), -1).min(1)) * 0.15

    @jax.jit
    def gradient(xs, ts):
        return grad(xs, ts)

    @jax.jit
    def smoothgrad(xs, ts):
        noise = jax.random.normal(jax.random.key(0), (50,) + xs.shape)
        def one(carry, n):
            return carry + grad(xs + span[:, None, None, None] * n, ts), None
        return jax.lax.scan(one, jnp.zeros_like(xs), noise)[0] / 50

    @jax.jit
    def integrated(xs, ts):
        alphas = jnp.linspace(0.0, 1.0, 50)
        weights = jnp.full(50, 1 / 49).at[jnp.array([0, 49])].multiply(0.5)
        def one(carry, aw):
            return carry + aw[1] * grad(aw[0] * xs, ts), None
        total = jax.lax.scan(one, jnp.zeros_like(xs), jnp.stack([alphas, weights], 1))[0]
        return xs * total

    bare = {}
    for name, fn in (("gradient", gradient), ("smoothgrad", smoothgrad),
                     ("integrated_gradients", integrated)):
        bare[name] = median_time(lambda: np.asarray(fn(xs, ts)), repeats) / len(x)
    return bare


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.batch, args.repeats)
        return
    results = {}
    for backend in ("tensorflow", "jax"):
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
                   JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
        output = subprocess.run(
            [sys.executable, __file__, f"--worker={backend}", f"--batch={args.batch}",
             f"--repeats={args.repeats}"], capture_output=True, text=True, env=env,
            check=True).stdout
        results[backend] = json.loads(output.strip().splitlines()[-1])
    tf_run, jax_run = results["tensorflow"], results["jax"]
    print(f"digits CNN, batch {args.batch}, median of {args.repeats}; ms per input "
          f"({os.cpu_count()} CPU cores)")
    print(f"{'method':<22}{'TensorFlow':>11}{'JAX':>9}{'JAX/TF':>8}{'bare JAX':>10}"
          f"{'ours/bare':>11}")
    for name, seconds in tf_run["methods"].items():
        on_jax = jax_run["methods"][name]
        bare = jax_run["bare"].get(name)
        bare_text = f"{bare * 1e3:10.2f}{on_jax / bare:11.2f}" if bare else f"{'-':>10}{'-':>11}"
        print(f"{name:<22}{seconds * 1e3:11.2f}{on_jax * 1e3:9.2f}{on_jax / seconds:8.2f}"
              f"{bare_text}")
    for key, label in (("dance_digits", "DANCE digits conv2 p4"),
                       ("dance_resnet", "DANCE ResNet block1_out")):
        print(f"{label:<22}{tf_run[key] * 1e3:11.1f}{jax_run[key] * 1e3:9.1f}"
              f"{jax_run[key] / tf_run[key]:8.2f}")


if __name__ == "__main__":
    main()
