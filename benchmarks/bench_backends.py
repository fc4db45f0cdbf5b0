"""Every method and DANCE on TensorFlow, JAX and PyTorch; ours against bare JAX and bare
PyTorch; and Captum on the same model.

One run, one machine: each backend runs in its own process (the Keras backend is fixed at
import). Per backend: time per input of every registered method (defaults) on the shipped
digits CNN, and DANCE (digits, layer conv2; the configurations ResNet, block1_out).

- JAX: ours against a bare ``jax.jit`` function doing the same arithmetic: the gradient
  family as ``jax.vmap(jax.grad(...))`` over ``stateless_call``, SmoothGrad and Integrated
  Gradients as the same loops over samples and steps.
- PyTorch: ours against bare ``torch.autograd.grad`` of the target logits over the Keras
  model (a ``torch.nn.Module``), the same loops; and Captum (``pip install captum``) where
  it takes the model: ``Saliency``, ``IntegratedGradients`` (Riemann trapezoid, 50 steps),
  ``NoiseTunnel(Saliency)`` (SmoothGrad, 50 samples) and ``LayerGradCam``, each timed and
  compared with our map.

Run: .venv/bin/python benchmarks/bench_backends.py [--batch 32] [--repeats 5]
"""

import argparse
import json
import os
import subprocess
import sys
import time


def median_time(function, repeats):
    return first_and_warm(function, repeats)[1]


def first_and_warm(function, repeats):
    """Seconds of the first call (tracing and compilation included) and the median of
    ``repeats`` warm calls."""
    start = time.perf_counter()
    function()  # compile / warm up
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return first, sorted(times)[len(times) // 2]


def worker(batch, repeats):
    import numpy as np

    import keras_dance as kd

    model = kd.datasets.load_digits_model()
    x = kd.datasets.load_digits()[2][:batch]
    targets = np.arange(batch) % 10
    result = {"methods": {}, "bare": {}, "first": {}, "new_size": {}}
    for name in kd.methods.general_method_names():
        method = {"name": name, "config": {"layer": "conv3"}} if "cam" in name else name
        start = time.perf_counter()
        explainer = kd.Explainer(model, method=method)
        built = time.perf_counter() - start
        first, warm = first_and_warm(lambda: explainer.explain(x, targets), repeats)
        result["first"][name] = built + first  # what a user waits for the first map
        result["methods"][name] = warm / batch
        # A batch of a size not seen before (a dataset's last batch, a notebook's next
        # call): JAX pads it to a compiled power of two instead of compiling again.
        start = time.perf_counter()
        explainer.explain(x[:5], targets[:5])
        result["new_size"][name] = time.perf_counter() - start
        # Another new size, padded to the same power of two on JAX (8): no compilation.
        start = time.perf_counter()
        explainer.explain(x[:7], targets[:7])
        result.setdefault("same_bucket", {})[name] = time.perf_counter() - start
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
    if keras.config.backend() == "torch":
        result["bare"] = bare_torch(model, x, targets, repeats)
        result["captum"] = captum(model, x, targets, repeats)
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


def bare_torch(model, x, targets, repeats):
    """The same arithmetic as ours on PyTorch, written directly: ``torch.autograd.grad`` of
    the target logits (the softmax layer's linear copy, as the explainer differentiates)
    over the batch; SmoothGrad and IG as loops of one batch pass per sample or step."""
    import numpy as np
    import torch

    import keras_dance as kd

    logits = kd.Explainer(model).logits_model
    xs, ts = torch.as_tensor(x), torch.as_tensor(targets).long()
    rows = torch.arange(len(x))
    flat = xs.reshape(len(x), -1)
    span = ((flat.max(1).values - flat.min(1).values) * 0.15).reshape(-1, 1, 1, 1)

    def grad(inputs):
        inputs = inputs.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(logits(inputs)[rows, ts].sum(), inputs)
        return g

    def gradient():
        return grad(xs)

    def smoothgrad():
        generator = torch.Generator().manual_seed(0)
        total = torch.zeros_like(xs)
        for _ in range(50):
            total += grad(xs + span * torch.randn(xs.shape, generator=generator))
        return total / 50

    def integrated():
        alphas = torch.linspace(0.0, 1.0, 50)
        weights = torch.full((50,), 1 / 49)
        weights[[0, 49]] *= 0.5
        total = torch.zeros_like(xs)
        for alpha, weight in zip(alphas, weights):
            total += weight * grad(alpha * xs)
        return xs * total

    bare = {}
    for name, fn in (("gradient", gradient), ("smoothgrad", smoothgrad),
                     ("integrated_gradients", integrated)):
        bare[name] = median_time(lambda: fn().numpy(), repeats) / len(x)
    # Does torch.compile pay on this CPU? The same gradient through the compiled model
    # (the compilation itself, in the warm-up call, is timed apart).
    compiled = torch.compile(logits)
    start = time.perf_counter()
    inputs = xs.detach().requires_grad_(True)
    torch.autograd.grad(compiled(inputs)[rows, ts].sum(), inputs)
    bare["compile_seconds"] = time.perf_counter() - start

    def compiled_gradient():
        inputs = xs.detach().requires_grad_(True)
        return torch.autograd.grad(compiled(inputs)[rows, ts].sum(), inputs)[0]

    bare["gradient_compiled"] = median_time(lambda: compiled_gradient().numpy(),
                                            repeats) / len(x)
    return bare


def captum(model, x, targets, repeats):
    """Captum's attributions of the same Keras model (a ``torch.nn.Module`` on this
    backend): seconds per input and the largest difference from our map (relative to
    our map's scale), or why Captum could not take it."""
    try:
        from captum.attr import IntegratedGradients, LayerGradCam, NoiseTunnel, Saliency
    except ImportError:
        return {"error": "captum is not installed (pip install captum)"}
    import numpy as np
    import torch

    import keras_dance as kd

    logits = kd.Explainer(model).logits_model
    xs, ts = torch.as_tensor(x), torch.as_tensor(targets).long()
    flat = x.reshape(len(x), -1)
    span = float(np.mean((flat.max(1) - flat.min(1)) * 0.15))  # one σ for the batch
    runs = {
        "gradient": (lambda: Saliency(logits).attribute(xs, target=ts, abs=False), "gradient"),
        "integrated_gradients": (lambda: IntegratedGradients(logits).attribute(
            xs, target=ts, n_steps=50, method="riemann_trapezoid"), "integrated_gradients"),
        "smoothgrad": (lambda: NoiseTunnel(Saliency(logits)).attribute(
            xs, nt_type="smoothgrad", nt_samples=50, stdevs=span, target=ts, abs=False),
            "smoothgrad"),
        "gradcam": (lambda: LayerGradCam(logits, model.get_layer("conv3")).attribute(
            xs, target=ts), {"name": "gradcam", "config": {"layer": "conv3"}}),
    }
    out = {}
    for name, (run, method) in runs.items():
        ours = kd.Explainer(model, method=method).explain(x, targets)
        try:
            theirs = run().detach().numpy()
        except Exception as error:  # report what Captum cannot do, and go on
            out[name] = {"error": f"{type(error).__name__}: {error}"[:200]}
            continue
        seconds = median_time(lambda: run().detach().numpy(), repeats) / len(x)
        if theirs.shape != ours.shape:
            out[name] = {"seconds": seconds, "error": (
                f"map of shape {theirs.shape} for inputs of shape {x.shape}: Captum takes "
                f"the layer's axis 1 as channels (NCHW); Keras's are last (NHWC)")}
            continue
        scale = np.abs(ours).max()
        out[name] = {"seconds": seconds, "difference": float(np.abs(theirs - ours).max() / scale)}
        if name == "integrated_gradients":
            # Captum's trapezoid weights sum to (n − 1)/n (steps of 1/n, both ends halved);
            # the trapezoid rule's sum to 1 (steps of 1/(n − 1)), as ours do.
            out[name]["difference_rescaled"] = float(
                np.abs(theirs * 50 / 49 - ours).max() / scale)
    return out


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
    import importlib.util

    backends = [b for b in ("tensorflow", "jax", "torch")
                if b == "tensorflow" or importlib.util.find_spec(b) is not None]
    for backend in backends:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
                   JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
        output = subprocess.run(
            [sys.executable, __file__, f"--worker={backend}", f"--batch={args.batch}",
             f"--repeats={args.repeats}"], capture_output=True, text=True, env=env,
            check=True).stdout
        results[backend] = json.loads(output.strip().splitlines()[-1])
    tf_run = results["tensorflow"]
    others = [b for b in backends if b != "tensorflow"]
    print(f"digits CNN, batch {args.batch}, median of {args.repeats}; ms per input "
          f"({os.cpu_count()} CPU cores)")
    header = f"{'method':<22}{'TensorFlow':>11}"
    for backend in others:
        label = LABELS[backend]
        header += f"{label:>9}{label[:5] + '/TF':>9}{'bare':>8}{'ours/bare':>10}"
    print(header)
    for name, seconds in tf_run["methods"].items():
        line = f"{name:<22}{seconds * 1e3:11.2f}"
        for backend in others:
            run = results[backend]
            ours = run["methods"][name]
            bare = run["bare"].get(name)
            line += f"{ours * 1e3:9.2f}{ours / seconds:9.2f}"
            line += f"{bare * 1e3:8.2f}{ours / bare:10.2f}" if bare else f"{'-':>8}{'-':>10}"
        print(line)
    print(f"\nFirst call (explainer built, traced, compiled) and warm call for {args.batch} "
          f"inputs, then first calls with 5 and then 7 inputs (JAX pads both to 8: one "
          f"compilation for the two); seconds")
    header = f"{'method':<22}"
    for backend in backends:
        header += f"{LABELS.get(backend, 'TF')[:5] + ' first':>12}{'warm':>6}{'5 in':>6}{'7 in':>6}"
    print(header)
    for name in tf_run["methods"]:
        line = f"{name:<22}"
        for backend in backends:
            run = results[backend]
            line += (f"{run['first'][name]:12.2f}{run['methods'][name] * args.batch:6.2f}"
                     f"{run['new_size'][name]:6.2f}{run['same_bucket'][name]:6.2f}")
        print(line)
    print()
    for key, label in (("dance_digits", "DANCE digits conv2 p4"),
                       ("dance_resnet", "DANCE ResNet block1_out")):
        line = f"{label:<22}{tf_run[key] * 1e3:11.1f}"
        for backend in others:
            line += f"{results[backend][key] * 1e3:9.1f}{results[backend][key] / tf_run[key]:9.2f}"
            line += " " * 18
        print(line)
    if "torch" in results:
        bare = results["torch"]["bare"]
        print(f"\nPyTorch, bare gradient through torch.compile: "
              f"{bare['gradient_compiled'] * 1e3:.2f} ms per input against "
              f"{bare['gradient'] * 1e3:.2f} eager ({bare['gradient_compiled'] / bare['gradient']:.2f}×), "
              f"after {bare['compile_seconds']:.1f} s of compilation")
        print("\nCaptum on the same Keras model (PyTorch backend): ms per input, ours on "
              "PyTorch, and the largest difference from our map (of its scale)")
        for name, row in results["torch"]["captum"].items():
            if name == "error":
                print(f"  {row}")
                break
            ours = results["torch"]["methods"][name] * 1e3
            if "seconds" not in row:
                print(f"{name:<22} Captum failed: {row['error']}")
                continue
            text = f"{name:<22}{row['seconds'] * 1e3:9.2f} Captum {ours:9.2f} ours"
            text += (f"   difference {row['difference']:.1e}" if "difference" in row
                     else f"   {row['error']}")
            if "difference_rescaled" in row:
                text += f" ({row['difference_rescaled']:.1e} with Captum's weights × n/(n − 1))"
            print(text)


LABELS = {"tensorflow": "TF", "jax": "JAX", "torch": "PyTorch"}


if __name__ == "__main__":
    main()
