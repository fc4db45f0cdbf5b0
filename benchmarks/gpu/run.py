"""keras-dance on a GPU with JAX or PyTorch: images per second against the bare framework,
DANCE per image, peak device memory and the dataset rate, on ImageNet-sized Keras
applications.

Made for a machine with JAX or PyTorch (CUDA) and nothing of ours: ``prepare.sh`` builds
the wheels (keras-dance, Keras and their pure-Python dependencies) to carry there,
``run.sh`` installs them without dependencies and runs this script on the backend
``KERAS_BACKEND`` names (jax unless set). It runs on the CPU too, and ``--quick`` (tiny
inputs and counts) is run by the test suite so that it cannot rot.

Per model (``weights=None``: no downloads): gradient, SmoothGrad (N samples) and
Integrated Gradients (N steps) in images per second, ours and a bare function doing the
same arithmetic (JAX: ``jax.jit`` of ``jax.vmap(jax.grad(...))`` over ``stateless_call``
and the same loops; PyTorch: ``torch.autograd.grad`` over the model, the same loops);
DANCE seconds per image at the model's early block, float32 and mixed bfloat16; peak
device memory where the device reports it; ``explain_files`` (local engine) images per
second over ``--dataset`` ``.npy`` files. Prints a table and writes JSON.

Run: KERAS_BACKEND=jax|torch python benchmarks/gpu/run.py [--quick] [--out results.json]
"""

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

def tiny(weights=None, input_shape=(32, 32, 3)):
    """A stand-in for the suite's quick run on the CPU (``--quick --models=tiny``): the
    same code paths as the real models (BatchNorm, a named early block, 1,000 classes
    through a softmax) at a fraction of their compilation time."""
    import keras

    del weights
    inputs = keras.Input(input_shape)
    h = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.ReLU(name="block1_relu")(h)
    h = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(1000, activation="softmax")(h))


def vit(weights=None, input_shape=(224, 224, 3), patch=16, layers=12, hidden=768, heads=12,
        mlp=3072):
    """A ViT-B/16-sized vision transformer of plain Keras layers (the GPU machine has no
    keras_hub): a patch convolution, a class token made from the patches' mean (no
    position embedding), pre-norm blocks of ``MultiHeadAttention`` and a GELU MLP, the
    class token pooled; ``tiny_vit`` is its quick form."""
    import keras

    del weights
    L = keras.layers
    inputs = keras.Input(input_shape)
    grid = input_shape[0] // patch
    tokens = L.Reshape((grid * grid, hidden))(
        L.Conv2D(hidden, patch, strides=patch, name="patch_embedding")(inputs))
    cls = L.Dense(hidden)(L.GlobalAveragePooling1D(keepdims=True)(tokens))
    x = L.Concatenate(axis=1)([cls, tokens])
    for i in range(layers):
        h = L.LayerNormalization(epsilon=1e-6, name=f"block{i + 1}_ln_1")(x)
        x = L.Add()([x, L.MultiHeadAttention(heads, hidden // heads)(h, h)])
        h = L.LayerNormalization(epsilon=1e-6)(x)
        x = L.Add()([x, L.Dense(hidden)(L.Dense(mlp, activation="gelu")(h))])
    x = L.LayerNormalization(epsilon=1e-6)(x)
    return keras.Model(inputs, L.Dense(1000, activation="softmax")(x[:, 0]))


def tiny_vit(weights=None, input_shape=(32, 32, 3)):
    return vit(weights, input_shape, patch=8, layers=2, hidden=16, heads=2, mlp=32)


#: name -> (keras.applications constructor, the early block DANCE's decoys are read at)
MODELS = {"resnet50": ("ResNet50", "conv2_block3_out"),
          "mobilenetv2": ("MobileNetV2", "block_3_expand_relu"),
          "densenet121": ("DenseNet121", "pool2_relu"),
          "vit_b16": (vit, "patch_embedding"),
          "tiny": (tiny, "block1_relu"),
          "tiny_vit": (tiny_vit, "patch_embedding")}
#: DANCE's patch for the vision transformers: one model patch, on its grid.
PATCHES = {"vit_b16": 16, "tiny_vit": 8}


def build(constructor, size):
    import keras

    make = constructor if callable(constructor) else getattr(keras.applications, constructor)
    return make(weights=None, input_shape=(size, size, 3))


def median_time(function, repeats):
    function()  # compile / warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def bare_functions(logits, samples, steps):
    """The arithmetic of our gradient, SmoothGrad and IG written directly in the backend's
    framework: ``{name: fn(numpy inputs, numpy targets) -> numpy maps}``."""
    import keras

    if keras.config.backend() == "torch":
        return bare_torch(logits, samples, steps)
    import numpy as np

    def on_host(fn):
        return lambda x, t: np.asarray(fn(x, t))

    return {name: on_host(fn) for name, fn in bare_jax(logits, samples, steps).items()}


def bare_torch(logits, samples, steps):
    """Our arithmetic in PyTorch: ``torch.autograd.grad`` of the target logits over the
    batch, one batch pass per SmoothGrad sample or IG step."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"

    def grad(inputs, ts):
        inputs = inputs.detach().requires_grad_(True)
        out = logits(inputs)
        total = out[torch.arange(len(ts), device=device), ts].float().sum()
        return torch.autograd.grad(total, inputs)[0]

    def tensors(x, t):
        return (torch.as_tensor(x, device=device),
                torch.as_tensor(t, device=device).long())

    def gradient(x, t):
        return grad(*tensors(x, t)).cpu().numpy()

    def smoothgrad(x, t):
        xs, ts = tensors(x, t)
        flat = xs.reshape(len(xs), -1)
        span = ((flat.max(1).values - flat.min(1).values) * 0.15).reshape(-1, 1, 1, 1)
        generator = torch.Generator(device=device).manual_seed(0)
        total = torch.zeros_like(xs)
        for _ in range(samples):
            noise = torch.randn(xs.shape, generator=generator, device=device)
            total += grad(xs + span * noise, ts)
        return (total / samples).cpu().numpy()

    def integrated(x, t):
        xs, ts = tensors(x, t)
        weights = [1 / (steps - 1)] * steps
        weights[0] = weights[-1] = 0.5 / (steps - 1)
        total = torch.zeros_like(xs)
        for j, weight in enumerate(weights):
            total += weight * grad(xs * (j / (steps - 1)), ts)
        return (xs * total).cpu().numpy()

    return {"gradient": gradient, "smoothgrad": smoothgrad, "integrated_gradients": integrated}


def bare_jax(logits, samples, steps):
    """Our arithmetic in JAX: ``jax.jit`` of ``jax.vmap(jax.grad(...))``, ``lax.scan`` loops."""
    import jax
    import jax.numpy as jnp

    trainable = [v.value for v in logits.trainable_variables]
    frozen = [v.value for v in logits.non_trainable_variables]

    def score(row, target):
        out, _ = logits.stateless_call(trainable, frozen, row[None], training=False)
        return out[0, target].astype("float32")

    grad = jax.vmap(jax.grad(score))

    @jax.jit
    def gradient(xs, ts):
        return grad(xs, ts)

    @jax.jit
    def smoothgrad(xs, ts):
        flat = xs.reshape(len(xs), -1)
        span = (flat.max(1) - flat.min(1)) * 0.15
        noise = jax.random.normal(jax.random.key(0), (samples,) + xs.shape)

        def one(carry, n):
            return carry + grad(xs + span.reshape((-1,) + (1,) * (xs.ndim - 1)) * n, ts), None
        return jax.lax.scan(one, jnp.zeros_like(xs), noise)[0] / samples

    @jax.jit
    def integrated(xs, ts):
        alphas = jnp.linspace(0.0, 1.0, steps)
        weights = jnp.full(steps, 1 / (steps - 1)).at[jnp.array([0, steps - 1])].multiply(0.5)

        def one(carry, aw):
            return carry + aw[1] * grad(aw[0] * xs, ts), None
        return xs * jax.lax.scan(one, jnp.zeros_like(xs), jnp.stack([alphas, weights], 1))[0]

    return {"gradient": gradient, "smoothgrad": smoothgrad, "integrated_gradients": integrated}


def peak_memory():
    import keras

    if keras.config.backend() == "torch":
        import torch

        return torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def describe_device():
    """(the device in words, the framework's name and version)."""
    import keras

    if keras.config.backend() == "torch":
        import torch

        name = (f"cuda: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available()
                else "cpu")
        return name, f"PyTorch {torch.__version__}"
    import jax

    device = jax.devices()[0]
    return f"{device.platform}: {getattr(device, 'device_kind', '')}", f"JAX {jax.__version__}"


def run_model(name, size, batch, samples, steps, dance_images, repeats):
    import keras
    import numpy as np

    import keras_dance as kd

    constructor, layer = MODELS[name]
    row = {}
    x = np.random.default_rng(0).uniform(size=(batch, size, size, 3)).astype(np.float32)
    for policy in ("float32", "mixed_bfloat16"):
        keras.mixed_precision.set_global_policy(policy)
        try:
            keras.utils.set_random_seed(0)
            model = build(constructor, size)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        targets = np.arange(batch) % 1000
        if policy == "float32":
            methods = {"gradient": "gradient",
                       "smoothgrad": kd.methods.SmoothGrad(num_samples=samples),
                       "integrated_gradients": kd.methods.IntegratedGradients(steps=steps)}
            bare = bare_functions(kd.Explainer(model).logits_model, samples, steps)
            for method_name, method in methods.items():
                explainer = kd.Explainer(model, method=method, batch_size=batch * samples)
                ours = median_time(lambda: explainer.explain(x, targets), repeats)
                theirs = median_time(lambda: bare[method_name](x, targets), repeats)
                row[method_name] = {"ours_images_per_s": batch / ours,
                                    "bare_images_per_s": batch / theirs,
                                    "ours_over_bare_time": ours / theirs}
        config = kd.DecoyConfig(layer=layer, patch=PATCHES.get(name, max(2, size // 8)),
                                steps=5)
        dance = kd.Explainer(model, decoys=config, batch_size=256)
        images = x[:dance_images]
        seconds = median_time(lambda: dance.explain(images, targets[:dance_images]), 1)
        row[f"dance_{policy}_s_per_image"] = seconds / len(images)
    row["peak_device_bytes"] = peak_memory()
    return row


def dataset_rate(name, size, count):
    import numpy as np

    import keras
    import keras_dance as kd

    constructor, _ = MODELS[name]
    keras.utils.set_random_seed(0)
    model = build(constructor, size)
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as folder:
        model.save(os.path.join(folder, "model.keras"))
        for i in range(count):
            np.save(os.path.join(folder, f"{i:05d}.npy"),
                    rng.uniform(size=(size, size, 3)).astype(np.float32))
        spec = kd.distributed.ExplainerSpec(os.path.join(folder, "model.keras"))
        start = time.perf_counter()
        summary = kd.distributed.explain_files(os.path.join(folder, "*.npy"), spec,
                                               os.path.join(folder, "out"), progress=False)
        seconds = time.perf_counter() - start
    assert summary.explained == count, summary
    return count / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,mobilenetv2,densenet121,vit_b16")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--samples", type=int, default=50, help="SmoothGrad samples, IG steps")
    parser.add_argument("--dance_images", type=int, default=2)
    parser.add_argument("--dataset", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="tiny inputs and counts: the suite's check that this runs")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.size, args.batch, args.samples, args.dance_images = 32, 2, 3, 1
        args.dataset, args.repeats = 4, 1
    import keras

    device, framework = describe_device()
    results = {"backend": keras.config.backend(), "device": device, "framework": framework,
               "size": args.size, "batch": args.batch, "samples": args.samples, "models": {}}
    names = [n for n in args.models.split(",") if n]
    for name in names:
        results["models"][name] = run_model(name, args.size, args.batch, args.samples,
                                            args.samples, args.dance_images, args.repeats)
    try:
        import pyarrow  # noqa: F401  (the dataset engines write Parquet)
    except ImportError:
        results["dataset_images_per_s"] = None  # carried separately: see prepare.sh
    else:
        results["dataset_images_per_s"] = dataset_rate(names[0], args.size, args.dataset)
    print(f"{results['device']}, {results['framework']}, {args.size}x{args.size}, "
          f"batch {args.batch}, N={args.samples}")
    print(f"{'model':<13}{'method':<22}{'ours img/s':>11}{'bare img/s':>11}{'ours/bare':>10}")
    for name, row in results["models"].items():
        for method in ("gradient", "smoothgrad", "integrated_gradients"):
            r = row[method]
            print(f"{name:<13}{method:<22}{r['ours_images_per_s']:11.2f}"
                  f"{r['bare_images_per_s']:11.2f}{r['ours_over_bare_time']:10.2f}")
        print(f"{name:<13}DANCE s/image: fp32 {row['dance_float32_s_per_image']:.3f}, bf16 "
              f"{row['dance_mixed_bfloat16_s_per_image']:.3f}; peak device memory "
              f"{row['peak_device_bytes']}")
    rate = results["dataset_images_per_s"]
    print(f"explain_files (local engine, {names[0]}): " + (
        f"{rate:.1f} images/s" if rate else "skipped: pyarrow is not installed"))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
