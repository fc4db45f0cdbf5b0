"""The decoy engine against a straightforward full-image solver, in one run.

1. A 64×64×3 conv model, layer ``conv2`` (two 3×3 convolutions deep), patch 4, stride 4
   (256 patches, 512 problems per input), fixed steps (no early exit): our engine
   (receptive-field crops) against the same solver on the full image (``crop=False``:
   one tf.function, the same steps, the same feasibility check). Time per input, ratio,
   fraction feasible.
2. The engine's sub-model forward+backward throughput (crops per second through the
   solver loop) against a bare batched forward+backward of the same sub-model on
   crops of the same shape in a ``tf.while_loop``, timed in interleaved rounds, in a fresh
   process for each convolution kernel set (TensorFlow's default and oneDNN).
3. Peak memory (RSS, in a fresh process each) of ``explain`` as the number of decoys per
   call grows 10× (1 input → 10 inputs) at a fixed ``batch_size``.
4. End-to-end DANCE time per input on the shipped digits model with the defaults.

Run: .venv/bin/python benchmarks/bench_decoys.py [--steps 20]
"""

import argparse
import functools
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_dance as kd  # noqa: E402


def conv_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64, 64, 3))
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(h)
    h = keras.layers.MaxPooling2D(4)(h)
    h = keras.layers.Flatten()(h)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(h))


def images(count, seed=0):
    """Smooth random images in [0, 1]."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(size=(count, 8, 8, 3)).astype(np.float32)
    return tf.image.resize(coarse, (64, 64), method="bicubic").numpy().clip(0, 1)


def interleaved(calls, rounds):
    """Seconds of each call over ``rounds`` rounds; each round runs every call once.

    The machine's speed drifts by tens of percent over seconds (shared cores), so ratios
    are taken within a round, between calls run back to back, never across the run.
    """
    for call in calls.values():
        call()  # trace and warm up
    seconds = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            seconds[name].append(time.perf_counter() - start)
    return {name: np.asarray(times) for name, times in seconds.items()}


def _quartiles(values):
    low, high = np.percentile(values, [25, 75])
    return f"{low:.2f}–{high:.2f}"


def _rss_mb():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_probe(count, steps, batch_size):
    """Runs in a fresh process: RSS growth during explain() on ``count`` inputs.

    A thread samples the resident set every 2 ms while ``explain`` runs (after a warm-up
    call that traces and allocates); the figure is the peak minus the RSS just before.
    """
    import threading

    model = conv_model()
    explainer = kd.Explainer(model, decoys=decoy_config(steps), batch_size=batch_size)
    x = images(count)
    explainer.explain(x[:1])  # trace, compile and allocate once
    before = _rss_mb()
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    explainer.explain(x)
    done.set()
    sampler.join()
    print(json.dumps({"before_mb": before, "peak_mb": peak[0],
                      "decoys": count * explainer.decoys.num_decoys}))


def decoy_config(steps, **overrides):
    """The benchmark's problems: layer conv2, patch 4, stride 4, fixed steps (no early exit)."""
    return kd.DecoyConfig(layer="conv2", patch=4, stride=4, steps=steps, patience=0,
                          **overrides)


def run_self(*flags, env=None):
    """This script with ``flags``, in a fresh process; its standard output."""
    return subprocess.run([sys.executable, __file__, *flags], capture_output=True, text=True,
                          check=True, env=env).stdout


def throughput(steps, rounds):
    """Part 2, in its own process (the kernel set is fixed when TensorFlow loads)."""
    model = conv_model()
    x = images(1)
    engine = kd.Explainer(model, decoys=decoy_config(steps)).decoys
    plan = engine.crop_plan
    crops = tf.constant(np.random.default_rng(0).uniform(
        size=(engine.num_decoys,) + plan.crop_shape + (3,)).astype(np.float32))

    @tf.function
    def bare(z):
        def body(i, z):
            with tf.GradientTape() as tape:
                tape.watch(z)
                total = tf.reduce_sum(engine.sub_model(z))
            return i + 1, z - 1e-3 * tape.gradient(total, z)
        return tf.while_loop(lambda i, z: i < steps, body, (0, z))[1]

    xt, zero = tf.constant(x), tf.constant(0)
    calls = {"bare": lambda: bare(crops).numpy()}
    for fuse in (True, False):
        kd.decoys.DecoyEngine.fuse = fuse
        for n in (steps, 1):
            solver = kd.decoys.DecoyEngine(model, decoy_config(n), engine.input_shape)
            solve = tf.function(functools.partial(solver.solve, pairs=engine.num_decoys))
            calls[fuse, n] = functools.partial(lambda f: f(xt, zero)[0].numpy(), solve)
            calls[fuse, n]()  # trace now: `fuse` is read when the solver is traced
    kd.decoys.DecoyEngine.fuse = True
    seconds = interleaved(calls, rounds)
    bare_rates = engine.num_decoys * steps / seconds["bare"]
    kernels = ("oneDNN convolution kernels" if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1"
               else "default (Eigen) convolution kernels")
    print(f"2. {kernels}: sub-model forward+backward samples/s, {rounds} interleaved rounds "
          f"(each round times every variant once; ratios are medians over rounds of the ratio "
          f"within a round): bare loop {np.median(bare_rates):,.0f}")
    for fuse in (True, False):
        whole, one = seconds[fuse, steps], seconds[fuse, 1]
        call_rates = engine.num_decoys * steps / whole
        loop_rates = engine.num_decoys * (steps - 1) / (whole - one)
        print(f"   engine ({'XLA-fused' if fuse else 'unfused'} element-wise work): whole solve "
              f"call (full-input F_l(x), crop gathers, final check included) "
              f"{np.median(call_rates):,.0f}, ratio {np.median(call_rates / bare_rates):.2f} "
              f"(quartiles {_quartiles(call_rates / bare_rates)}); loop alone, per step from "
              f"a {steps}- and a 1-step run, {np.median(loop_rates):,.0f}, ratio "
              f"{np.median(loop_rates / bare_rates):.2f}")


def _cpu():
    with open("/proc/cpuinfo") as handle:
        info = handle.read()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                 if line.startswith("model name")), "unknown CPU")
    return f"{name}, {os.cpu_count()} cores, AVX-512 {'yes' if 'avx512f' in info else 'no'}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--memory-probe", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--throughput", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.throughput:
        throughput(args.steps, args.rounds)
        return
    if args.memory_probe:
        memory_probe(args.memory_probe, args.steps, args.batch_size)
        return

    model = conv_model()
    x = images(1)
    engine_explainer = kd.Explainer(model, decoys=decoy_config(args.steps),
                                    batch_size=args.batch_size)
    full_explainer = kd.Explainer(model, decoys=decoy_config(args.steps, crop=False),
                                  batch_size=args.batch_size)
    engine = engine_explainer.decoys
    print(f"Machine: {_cpu()}; TensorFlow {tf.__version__}")
    print(f"1. 64×64×3 model, layer conv2, patch 4 stride 4: {engine.num_decoys} problems "
          f"per input, {args.steps} fixed steps, batch_size={args.batch_size}")
    print(f"   engine: {engine.reason}")
    part1 = interleaved({"engine": lambda: engine_explainer.generate_decoys(x),
                         "full": lambda: full_explainer.generate_decoys(x)}, rounds=2)
    _, feasible_engine = engine_explainer.generate_decoys(x)
    _, feasible_full = full_explainer.generate_decoys(x)
    ratios = part1["full"] / part1["engine"]
    print(f"   time per input (median of 2 interleaved rounds): engine "
          f"{np.median(part1['engine']):.3f} s, full-image solver {np.median(part1['full']):.3f} "
          f"s, ratio {np.median(ratios):.1f}× (rounds: {', '.join(f'{r:.1f}×' for r in ratios)})")
    print(f"   fraction feasible: engine {feasible_engine.mean():.3f}, "
          f"full-image {feasible_full.mean():.3f}")

    # 2. Throughput against a bare loop, in fresh processes: one per convolution kernel set
    # (TensorFlow's oneDNN kernels are on by default on some CPUs only, and are several
    # times faster here: the faster the model, the larger the share of the solver's own work).
    for onednn in ("0", "1"):
        print(run_self("--throughput", f"--steps={args.steps}", f"--rounds={args.rounds}",
                       env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn}).rstrip(), flush=True)

    # 3. Peak memory as decoys grow 10×.
    results = []
    for count in (1, 10):
        output = run_self(f"--memory-probe={count}", f"--steps={args.steps}",
                          f"--batch-size={args.batch_size}")
        results.append(json.loads(output.strip().splitlines()[-1]))
    growth = [r["peak_mb"] - r["before_mb"] for r in results]
    print(f"3. memory of explain() at batch_size={args.batch_size} (RSS sampled during the "
          f"call, fresh process each): {results[0]['decoys']} decoys: peak "
          f"{results[0]['peak_mb']:.0f} MB, +{growth[0]:.0f} MB over the warmed-up process; "
          f"{results[1]['decoys']} decoys: peak {results[1]['peak_mb']:.0f} MB, "
          f"+{growth[1]:.0f} MB; peak ratio {results[1]['peak_mb'] / results[0]['peak_mb']:.2f}")

    # 4. End to end on the shipped digits model, defaults.
    digits = kd.datasets.load_digits_model()
    sample = kd.datasets.load_digits()[2][:8]
    for method in ("gradient", "smoothgrad"):
        explainer = kd.Explainer(digits, method, decoys=kd.DecoyConfig(layer="conv2", patch=4))
        explainer.explain(sample[:1])
        start = time.perf_counter()
        explainer.explain(sample)
        seconds = (time.perf_counter() - start) / len(sample)
        print(f"4. DANCE({method}) on the digits CNN, layer conv2, patch 4, defaults "
              f"({explainer.decoys.num_decoys} decoys): {seconds:.3f} s per input")


if __name__ == "__main__":
    main()
