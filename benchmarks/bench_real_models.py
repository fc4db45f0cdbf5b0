"""keras-dance on the models users bring: keras.applications at 224×224 (weights=None).

One run, side by side, per model (ResNet50, MobileNetV2, DenseNet121 by default):

(a) gradient, SmoothGrad (N samples) and Integrated Gradients (N steps), seconds per
    image: ``kd.Explainer(...).explain`` against a bare ``tf.function`` doing the same
    arithmetic on the same logits model with the same rows per pass (``--rows``), no
    validation, no targets logic, no chunk bookkeeping. Target: ours ≤ 1.1× bare.
(b) the decoy solver with receptive-field cropping against ``crop=False`` on the same
    problems (a fixed block of ``--problems`` decoy problems from the middle of the
    image) and the same fixed number of steps (no early exit), at a layer in the second
    stage: milliseconds per problem-step and the ratio. Target on ResNet50: ≥ 5×.
(c) the projected DANCE time per 224×224 image with the default patch (``patch=None``):
    decoys × 60 steps (the default maximum; early exit only shortens it) × the measured
    cropped problem-step + decoys × the measured gradient map per image; and the same
    projection for other patch sides (ResNet50), which is how the default was chosen.
(d) whether cropping is used ("reason") for six architectures at layers of their first
    two stages.

Seconds are medians of ``--repeats`` timed calls after one warm-up call; ours and bare
alternate within each repeat. Run (about 15 minutes on 2 CPU cores):
    .venv/bin/python benchmarks/bench_real_models.py [--device gpu] [--out FILE.md]
"""

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_dance as kd  # noqa: E402
from keras_dance.decoys import masks as masks_lib  # noqa: E402

APPLICATIONS = {
    # name: (constructor, stage-2 layer for the decoy benchmark)
    "resnet50": (keras.applications.ResNet50, "conv2_block3_out"),
    "mobilenetv2": (keras.applications.MobileNetV2, "block_2_add"),
    "densenet121": (keras.applications.DenseNet121, "conv2_block3_concat"),
}
REASON_LAYERS = {
    "ResNet50": (keras.applications.ResNet50, ["conv2_block1_out", "conv2_block3_out"]),
    "ResNet50V2": (keras.applications.ResNet50V2, ["conv2_block1_out", "conv2_block2_out"]),
    "MobileNetV2": (keras.applications.MobileNetV2, ["block_1_project_BN", "block_2_add"]),
    "DenseNet121": (keras.applications.DenseNet121, ["conv2_block1_concat", "pool2_relu"]),
    "VGG16": (keras.applications.VGG16, ["block1_pool", "block2_conv2"]),
    "Xception": (keras.applications.Xception, ["block1_conv2_act", "add"]),
}
PATCHES = (8, 14, 16, 28)


def timed(functions, repeats):
    """Median seconds of each zero-argument function; one warm-up each, calls alternate."""
    for fn in functions:
        fn()
    times = [[] for _ in functions]
    for _ in range(repeats):
        for i, fn in enumerate(functions):
            start = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - start)
    return [float(np.median(t)) for t in times]


def bare_function(logits, shape, classes, kind, n, rows):
    """The bare batched reference: ``n`` expanded rows per input, ``rows`` per pass."""
    spec = [tf.TensorSpec((None,) + shape), tf.TensorSpec((None,), tf.int32)]
    n = 1 if kind == "gradient" else n
    per_pass = max(1, rows)
    alphas = tf.linspace(0.0, 1.0, n) if kind == "ig" else None
    weights = np.full(n, 1.0 / max(n - 1, 1), np.float32)
    weights[[0, -1]] *= 0.5

    @tf.function(input_signature=spec)
    def run(x, targets):
        total = tf.zeros_like(x)
        axes = list(range(1, len(shape) + 1))
        span = tf.reduce_max(x, axes) - tf.reduce_min(x, axes)
        sigma = tf.reshape(0.15 * span, [1, -1] + [1] * len(shape))
        for start in tf.range(0, n, per_pass):
            tf.autograph.experimental.set_loop_options(parallel_iterations=1)
            size = tf.minimum(per_pass, n - start)
            index = start + tf.range(size)
            if kind == "smoothgrad":
                noise = tf.random.stateless_normal(tf.concat([[size], tf.shape(x)], 0),
                                                   seed=[0, 0])
                batch = x[None] + sigma * noise
            elif kind == "ig":
                batch = tf.reshape(tf.gather(alphas, index), [-1, 1] + [1] * len(shape)) * x[None]
            else:
                batch = x[None]
            flat = tf.reshape(batch, (-1,) + shape)
            with tf.GradientTape() as tape:
                tape.watch(flat)
                out = logits(flat, training=False)
                score = tf.reduce_sum(out * tf.one_hot(tf.tile(targets, [size]), classes))
            grads = tf.reshape(tape.gradient(score, flat), tf.concat([[size], tf.shape(x)], 0))
            if kind == "ig":
                grads *= tf.reshape(tf.gather(weights, index), [-1, 1] + [1] * len(shape))
                total += tf.reduce_sum(grads, 0)
            else:
                total += tf.reduce_sum(grads, 0)
        if kind == "ig":
            return x * total
        return total / float(n)

    return run


def methods_table(name, model, x, args, lines):
    """(a): ours against bare, per image."""
    targets = np.zeros(len(x), np.int32)
    shape = x.shape[1:]
    variants = {
        "gradient": ("gradient", "gradient"),
        f"SmoothGrad (N = {args.samples})": (
            kd.methods.SmoothGrad(num_samples=args.samples), "smoothgrad"),
        f"IG ({args.samples} steps)": (
            kd.methods.IntegratedGradients(steps=args.samples), "ig"),
    }
    rows = {}
    for label, (method, kind) in variants.items():
        if kind not in args.methods.split(","):
            continue
        explainer = kd.Explainer(model, method, batch_size=args.rows * len(x))
        bare = bare_function(explainer._logits.model, shape, 1000, kind, args.samples,
                             args.rows)
        xt, tt = tf.constant(x), tf.constant(targets)
        ours_s, bare_s = timed([lambda: explainer.explain(x, targets),
                                lambda: bare(xt, tt).numpy()], args.repeats)
        rows[label] = ours_s / len(x)
        lines.append(f"| {name} | {label} | {ours_s / len(x):.3f} | {bare_s / len(x):.3f} | "
                     f"{ours_s / bare_s:.2f}× |")
        print(lines[-1], flush=True)
    return rows.get("gradient", float("nan"))


def solver_time(model, layer, x, patch, crop, args):
    """Seconds per problem-step of the decoy solver on a fixed block of problems."""
    config = kd.DecoyConfig(layer=layer, patch=patch, steps=args.solver_steps, patience=0,
                            crop=crop)
    engine = kd.Explainer(model, decoys=config).decoys
    pairs = min(args.problems, engine.num_decoys)
    start = tf.constant((engine.num_decoys - pairs) // 2 // 2 * 2, tf.int32)  # middle block
    xt = tf.constant(x[:1])

    @tf.function
    def solve():
        return engine.solve(xt, start, pairs)[1]

    (seconds,) = timed([lambda: solve().numpy()], args.repeats)
    return seconds / (pairs * args.solver_steps), engine


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(APPLICATIONS))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--samples", type=int, default=50, help="SmoothGrad N and IG steps")
    parser.add_argument("--rows", type=int, default=16, help="rows per pass per image")
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--solver_steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--methods", default="gradient,smoothgrad,ig",
                        help="(a): which of gradient,smoothgrad,ig")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: a,b,c,d")
    parser.add_argument("--out", default=None, help="also write the tables here (markdown)")
    args = parser.parse_args()
    skip = set(args.skip.split(",")) - {""}
    if args.device == "cpu":
        tf.config.set_visible_devices([], "GPU")
    elif not tf.config.list_physical_devices("GPU"):
        raise SystemExit("--device gpu: TensorFlow sees no GPU")
    else:
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
    gpus = tf.config.list_logical_devices("GPU")
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
               f"{'GPU: ' + ', '.join(g.name for g in gpus) if gpus else 'no GPU'}, "
               f"TensorFlow {tf.__version__}, Keras {keras.__version__}")
    size = args.size
    x = np.random.default_rng(0).uniform(0, 1, (args.images, size, size, 3)).astype(np.float32)
    lines = [f"Machine: {machine}. Inputs {size}×{size}×3, weights=None (random), "
             f"{args.images} image(s).", ""]
    print(lines[0], flush=True)
    names = [n for n in args.models.split(",") if n]
    gradient_s, cropped = {}, {}
    if "a" not in skip:
        lines += ["## (a) Plain methods: seconds per image, ours against a bare tf.function",
                  "", f"Both evaluate {args.rows} rows per image per pass.", "",
                  "| model | method | ours s | bare s | ours / bare |", "|---|---|---:|---:|---:|"]
        for name in names:
            keras.utils.set_random_seed(0)
            model = APPLICATIONS[name][0](input_shape=(size, size, 3), weights=None)
            gradient_s[name] = methods_table(name, model, x, args, lines)
        lines.append("")
    if "b" not in skip:
        default_patch = masks_lib.auto_patch((size, size))
        lines += ["## (b) Decoy solver: cropped against the full input, same problems",
                  "", f"Patch {default_patch} (the default at this size), {args.problems} "
                  f"problems, {args.solver_steps} fixed steps, milliseconds per problem-step.",
                  "", "| model | layer | crop of input | cropped ms | full ms | speed-up |",
                  "|---|---|---:|---:|---:|---:|"]
        for name in names:
            keras.utils.set_random_seed(0)
            constructor, layer = APPLICATIONS[name]
            model = constructor(input_shape=(size, size, 3), weights=None)
            crop_s, engine = solver_time(model, layer, x, None, "auto", args)
            full_s, _ = solver_time(model, layer, x, None, False, args)
            cropped[name] = (crop_s, engine)
            fraction = engine.crop_plan.fraction if engine.cropping else 1.0
            lines.append(f"| {name} | `{layer}` | {fraction:.1%} | {crop_s * 1e3:.2f} | "
                         f"{full_s * 1e3:.2f} | {full_s / crop_s:.1f}× |")
            print(lines[-1], flush=True)
        lines.append("")
    if "c" not in skip and cropped:
        lines += ["## (c) Projected DANCE time per image (60 steps, the default maximum)", "",
                  "decoys × 60 × cropped problem-step + decoys × gradient map per image.", "",
                  "| model | patch | patches | decoys | crop of input | solver s | maps s | "
                  "total s |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name in names:
            keras.utils.set_random_seed(0)
            constructor, layer = APPLICATIONS[name]
            model = constructor(input_shape=(size, size, 3), weights=None)
            patches = PATCHES if name == "resnet50" else (None,)
            for patch in patches:
                if patch is None:
                    step_s, engine = cropped[name]
                else:
                    step_s, engine = solver_time(model, layer, x, patch, "auto", args)
                fraction = engine.crop_plan.fraction if engine.cropping else 1.0
                solver = engine.num_decoys * 60 * step_s
                maps = engine.num_decoys * gradient_s.get(name, float("nan"))
                label = f"{engine.patch[0]}" + (" (default)" if engine.patch[0] ==
                                                 masks_lib.auto_patch((size, size)) else "")
                lines.append(f"| {name} | {label} | {engine.num_patches} | {engine.num_decoys} "
                             f"| {fraction:.1%} | {solver:.0f} | {maps:.0f} | "
                             f"{solver + maps:.0f} |")
                print(lines[-1], flush=True)
        lines.append("")
    if "d" not in skip:
        lines += ["## (d) Receptive-field cropping on six architectures", "",
                  "Default patch at this size; `explainer.decoys.reason`.", "",
                  "| model | layer | cropping | reason |", "|---|---|---|---|"]
        for name, (constructor, layers) in REASON_LAYERS.items():
            keras.utils.set_random_seed(0)
            model = constructor(input_shape=(size, size, 3), weights=None)
            for layer in layers:
                engine = kd.Explainer(model, decoys=kd.DecoyConfig(layer=layer)).decoys
                lines.append(f"| {name} | `{layer}` | {'yes' if engine.cropping else 'no'} | "
                             f"{engine.reason} |")
                print(lines[-1], flush=True)
        lines.append("")
    if args.out:
        with open(args.out, "w") as handle:
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
