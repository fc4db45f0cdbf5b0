"""Times the methods: ours vs a bare reference, tf-keras-vis and Xplique.

One run, one model (the shipped digits CNN), one batch, the same sample/step counts:

- ours: ``kd.Explainer(...).explain`` with the default memory knob and with the knob at
  the whole expanded batch;
- bare: one ``tf.function`` that expands the batch (B × N rows), runs one
  forward+backward of the logits and reduces — the same arithmetic without chunking,
  validation or targets;
- tf-keras-vis: ``Saliency(..., smooth_samples=N)`` (SmoothGrad only; it has no IG).

Then the CAM family against tf-keras-vis (same layer, batch and channels), and every
method at the quality report's settings with 256 model rows per pass, beside Xplique's
time for the same method where Xplique has it (``--xplique_python``: Xplique pins another
TensorFlow, so it runs in its own environment, called from this script in the same run).

Prints median wall times over repeats and the ratios. Run:
    .venv/bin/python benchmarks/bench_methods.py [--batch 32] [--samples 50] [--repeats 5]
        [--xplique_python /path/to/xplique-venv/bin/python]
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_dance as kd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sections import median_time  # noqa: E402




def bare_smoothgrad(logits_model, n, sigma):
    @tf.function(input_signature=[tf.TensorSpec((None, 32, 32, 1)), tf.TensorSpec((None,), tf.int32)])
    def run(x, targets):
        noise = tf.random.stateless_normal(tf.concat([[n], tf.shape(x)], 0), seed=[0, 0])
        rows = tf.reshape(x[None] + sigma[None] * noise, [-1, 32, 32, 1])
        with tf.GradientTape() as tape:
            tape.watch(rows)
            logits = logits_model(rows, training=False)
            score = tf.reduce_sum(logits * tf.one_hot(tf.tile(targets, [n]), 10))
        grads = tape.gradient(score, rows)
        return tf.reduce_mean(tf.reshape(grads, tf.concat([[n], tf.shape(x)], 0)), axis=0)
    return run


def bare_integrated_gradients(logits_model, steps):
    alphas = tf.reshape(tf.linspace(0.0, 1.0, steps), [-1, 1, 1, 1, 1])
    weights = np.full(steps, 1.0 / (steps - 1), np.float32)
    weights[[0, -1]] *= 0.5
    weights = tf.reshape(tf.constant(weights), [-1, 1, 1, 1, 1])

    @tf.function(input_signature=[tf.TensorSpec((None, 32, 32, 1)), tf.TensorSpec((None,), tf.int32)])
    def run(x, targets):
        rows = tf.reshape(alphas * x[None], [-1, 32, 32, 1])
        with tf.GradientTape() as tape:
            tape.watch(rows)
            logits = logits_model(rows, training=False)
            score = tf.reduce_sum(logits * tf.one_hot(tf.tile(targets, [steps]), 10))
        grads = tf.reshape(tape.gradient(score, rows), tf.concat([[steps], tf.shape(x)], 0))
        return x * tf.reduce_sum(weights * grads, axis=0)
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--xplique_python", default=None,
                        help="python of an environment with Xplique installed")
    args = parser.parse_args()
    b, n = args.batch, args.samples

    model = kd.datasets.load_digits_model()
    x = kd.datasets.load_digits()[2][:b]
    explainer = kd.Explainer(model)
    targets = explainer.predict_classes(x)
    logits_model = explainer._logits.model
    xt, tt = tf.constant(x), tf.constant(targets)
    span = x.reshape(b, -1).max(1) - x.reshape(b, -1).min(1)
    sigma = tf.constant((0.15 * span).reshape(b, 1, 1, 1), tf.float32)

    print(f"model: shipped digits CNN; batch {b}; N = {n} samples / steps; "
          f"median of {args.repeats}; {tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()} threads")
    rows = []

    sg = kd.methods.SmoothGrad(num_samples=n)
    ours_default = kd.Explainer(model, sg)
    ours_full = kd.Explainer(model, sg, batch_size=b * n)
    bare = bare_smoothgrad(logits_model, n, sigma)
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    functional = keras.Model(model.inputs[0], model.outputs[0])
    vis = Saliency(functional, model_modifier=ReplaceToLinear(), clone=True)
    score = CategoricalScore(targets.tolist())
    t_bare = median_time(lambda: bare(xt, tt).numpy(), args.repeats)
    t_default = median_time(lambda: ours_default.explain(x, targets), args.repeats)
    t_full = median_time(lambda: ours_full.explain(x, targets), args.repeats)
    t_vis = median_time(lambda: vis(score, x, smooth_samples=n, smooth_noise=0.15,
                                    normalize_map=False, keepdims=True,
                                    gradient_modifier=None), args.repeats)
    rows.append(("SmoothGrad", t_bare, t_default, ours_default.batch_size, t_full, t_vis))

    ig = kd.methods.IntegratedGradients(steps=n)
    ours_default = kd.Explainer(model, ig)
    ours_full = kd.Explainer(model, ig, batch_size=b * n)
    bare = bare_integrated_gradients(logits_model, n)
    t_bare = median_time(lambda: bare(xt, tt).numpy(), args.repeats)
    t_default = median_time(lambda: ours_default.explain(x, targets), args.repeats)
    t_full = median_time(lambda: ours_full.explain(x, targets), args.repeats)
    rows.append(("IntegratedGradients", t_bare, t_default, ours_default.batch_size, t_full, None))
    check = np.abs(ours_full.explain(x, targets) - bare(xt, tt).numpy()).max()

    print(f"{'method':<20}{'bare s':>9}{'ours(knob) s':>14}{'ours(full) s':>14}"
          f"{'tf-keras-vis s':>16}{'full/bare':>11}{'knob/bare':>11}{'vis/ours':>10}")
    for name, t_bare, t_default, _, t_full, t_vis in rows:
        vis_ratio = f"{t_vis / t_full:10.1f}" if t_vis else f"{'-':>10}"
        vis_time = f"{t_vis:16.3f}" if t_vis else f"{'-':>16}"
        print(f"{name:<20}{t_bare:9.3f}{t_default:14.3f}{t_full:14.3f}{vis_time}"
              f"{t_full / t_bare:11.2f}{t_default / t_bare:11.2f}{vis_ratio}")
    print(f"(ours(knob): default batch_size={rows[0][3]} rows per pass; "
          "ours(full): batch_size = B×N)")
    print(f"IG ours vs bare max |difference|: {check:.2e}")
    peers = cam_family(model, x, targets, args.repeats)
    every_method(model, x, targets, args.repeats, args.xplique_python, peers)


def cam_family(model, x, targets, repeats):
    """The CAM family: ours against tf-keras-vis on the same layer (conv3), batch and
    channels; the maps are compared too (they are equal, tests/test_cam.py)."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.layercam import Layercam
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    functional = keras.Model(model.inputs[0], model.outputs[0])
    score = CategoricalScore(targets.tolist())
    peers = {"gradcam": Gradcam, "gradcam_plus_plus": GradcamPlusPlus, "layercam": Layercam,
             "scorecam": Scorecam}
    # Every registered method that reads a layer; tf-keras-vis has a peer for the four CAMs.
    cases = [(name, peers[name], {}) for name in kd.methods.general_method_names()
             if kd.methods.registered()[name].takes_layer and name in peers]
    print(f"\nCAM family at conv3, batch {len(x)}: ours vs tf-keras-vis (median of {repeats})")
    print(f"{'method':<20}{'ours s':>9}{'tf-keras-vis s':>16}{'vis/ours':>10}")
    times = {}
    for name, peer_class, extra in cases:
        ours = kd.Explainer(model, method={"name": name, "config": {"layer": "conv3"}})
        peer = peer_class(functional, model_modifier=ReplaceToLinear(), clone=True)
        t_ours = median_time(lambda: ours.explain(x, targets), repeats)
        t_peer = median_time(lambda: peer(score, x, penultimate_layer="conv3",
                                          seek_penultimate_conv_layer=False,
                                          normalize_cam=False, **extra), repeats)
        times[name] = t_peer
        print(f"{name:<20}{t_ours:9.3f}{t_peer:16.3f}{t_peer / t_ours:10.1f}")
    return times


#: The settings the quality report uses, and Xplique's name for each method; a registered
#: method missing here runs with its defaults (every_method reads the registry).
SETTINGS = {
    "gradient": (kd.methods.Gradient(), "Saliency"),
    "gradient_x_input": (kd.methods.GradientXInput(), "GradientInput"),
    "integrated_gradients": (kd.methods.IntegratedGradients(steps=32), "IntegratedGradients"),
    "smoothgrad": (kd.methods.SmoothGrad(num_samples=32), "SmoothGrad"),
    "vargrad": (kd.methods.VarGrad(num_samples=32), "VarGrad"),
    "squaregrad": (kd.methods.SquareGrad(num_samples=32), "SquareGrad"),
    "gradcam": (kd.methods.GradCAM(layer="conv3"), "GradCAM"),
    "gradcam_plus_plus": (kd.methods.GradCAMPlusPlus(layer="conv3"), "GradCAMPP"),
    "layercam": (kd.methods.LayerCAM(layer="conv3"), None),
    "scorecam": (kd.methods.ScoreCAM(layer="conv3"), None),
    "occlusion": (kd.methods.Occlusion(patch=4, stride=2), "Occlusion"),
    "rise": (kd.methods.RISE(num_masks=1000, cells=6), "Rise"),
    "kernel_shap": (kd.methods.KernelSHAP(patch=4, num_samples=500), "KernelShap"),
    "guided_backprop": (kd.methods.GuidedBackprop(), "GuidedBackprop"),
}


def every_method(model, x, targets, repeats, xplique_python, cam_peers):
    """Every method, ours, with 256 model rows per pass; Xplique's time for the same
    method, inputs and rows per pass when ``--xplique_python`` names an environment
    with Xplique (it pins another TensorFlow: see benchmarks/xplique_times.py)."""
    import json
    import subprocess
    import tempfile

    rows_per_pass = 256
    ours = {}
    settings = {name: SETTINGS.get(name, (kd.methods.get(name), None))
                for name in kd.methods.general_method_names()}
    for name, (method, _) in settings.items():
        explainer = kd.Explainer(model, method=method, batch_size=rows_per_pass)
        ours[name] = median_time(lambda: explainer.explain(x, targets), repeats)
    xplique = {}
    if xplique_python:
        with tempfile.TemporaryDirectory() as work:
            np.save(f"{work}/x.npy", x)
            np.save(f"{work}/targets.npy", targets)
            script = os.path.join(os.path.dirname(__file__), "xplique_times.py")
            result = subprocess.run(
                [xplique_python, script, f"{work}/x.npy", f"{work}/targets.npy",
                 "--repeats", str(repeats), "--rows", str(rows_per_pass)],
                capture_output=True, text=True, check=True)
            xplique = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"\nEvery method, batch {len(x)}, {rows_per_pass} rows per pass "
          f"(median of {repeats}; Xplique in its own environment"
          f"{'' if xplique else ': not given'})")
    print(f"{'method':<22}{'ours s':>9}{'tf-keras-vis s':>16}{'Xplique s':>11}"
          f"{'fastest peer / ours':>21}")
    for name, (_, peer_name) in settings.items():
        peers = [t for t in (cam_peers.get(name), xplique.get(peer_name or "")) if t]
        vis = f"{cam_peers[name]:16.3f}" if name in cam_peers else f"{'-':>16}"
        xq = f"{xplique[peer_name]:11.3f}" if peer_name in xplique else f"{'-':>11}"
        ratio = f"{min(peers) / ours[name]:21.2f}" if peers else f"{'-':>21}"
        print(f"{name:<22}{ours[name]:9.3f}{vis}{xq}{ratio}")
    if xplique.get("versions"):
        print(f"Xplique environment: {xplique['versions']}")
    for key, value in xplique.items():
        if key.endswith(" error"):
            print(f"Xplique {key}: {value}")


if __name__ == "__main__":
    main()
