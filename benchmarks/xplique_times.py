"""Xplique's times for the methods bench_methods.py compares; runs in Xplique's own
environment (Xplique 2 pins TensorFlow <= 2.20), called by bench_methods.py.

Loads the shipped digits CNN (Keras 3 format), takes its logits (the softmax set to
linear on this process's copy), and times each Xplique explainer on the inputs and
targets given, with ``--rows`` model rows per pass, as bench_methods.py times ours.
Prints one JSON line: ``{Xplique class name: median seconds, "versions": …}``.

Set up (once):
    python3.11 -m venv /tmp/xplique-venv
    /tmp/xplique-venv/bin/pip install "tensorflow==2.20.*" "tensorflow-probability[tf]<=0.25"
    /tmp/xplique-venv/bin/pip install --no-deps xplique==2.0.2
    /tmp/xplique-venv/bin/pip install deprecated einops opencv-python-headless \\
        "scikit-image<=0.25.2" "scikit-learn<=1.7.2" "scipy<=1.15.3" matplotlib
(``--no-deps``: Xplique asks for ``tensorflow[and-cuda]`` on Linux, gigabytes of CUDA
libraries a CPU run does not use.)
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sections import median_time  # noqa: E402  (numpy only: no keras_dance here)

MODEL = Path(__file__).resolve().parent.parent / "saved_models" / "digits_cnn.keras"




def patches(side, size=32):
    """KernelSHAP's features: a grid of ``side`` × ``side`` patches, as ours (Xplique
    maps one input to its feature labels)."""
    label = (np.arange(size)[:, None] // side) * ((size + side - 1) // side) + (
        np.arange(size)[None] // side)
    return lambda one_input: tf.constant(label, tf.int32)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("x")
    parser.add_argument("targets")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=256)
    args = parser.parse_args()
    import xplique
    from xplique import attributions as xa

    model = keras.models.load_model(MODEL, compile=False)
    model.layers[-1].activation = keras.activations.linear  # logits (Xplique's advice)
    x = np.load(args.x)
    targets = tf.one_hot(np.load(args.targets), 10).numpy()
    rows = args.rows
    explainers = {
        "Saliency": lambda: xa.Saliency(model, batch_size=rows),
        "GradientInput": lambda: xa.GradientInput(model, batch_size=rows),
        "IntegratedGradients": lambda: xa.IntegratedGradients(model, steps=32,
                                                              batch_size=rows),
        "SmoothGrad": lambda: xa.SmoothGrad(model, nb_samples=32, noise=0.15,
                                            batch_size=rows),
        "VarGrad": lambda: xa.VarGrad(model, nb_samples=32, noise=0.15, batch_size=rows),
        "SquareGrad": lambda: xa.SquareGrad(model, nb_samples=32, noise=0.15,
                                            batch_size=rows),
        "GradCAM": lambda: xa.GradCAM(model, conv_layer="conv3", batch_size=rows),
        "GradCAMPP": lambda: xa.GradCAMPP(model, conv_layer="conv3", batch_size=rows),
        "Occlusion": lambda: xa.Occlusion(model, patch_size=4, patch_stride=2,
                                          occlusion_value=0.0, batch_size=rows),
        "Rise": lambda: xa.Rise(model, nb_samples=1000, grid_size=6,
                                preservation_probability=0.5, batch_size=rows),
        "KernelShap": lambda: xa.KernelShap(model, nb_samples=500,
                                            ref_value=np.zeros(1, np.float32),
                                            map_to_interpret_space=patches(4),
                                            batch_size=rows),
        "GuidedBackprop": lambda: xa.GuidedBackprop(model, batch_size=rows),
    }
    times = {}
    for name, make in explainers.items():
        try:
            explainer = make()
            times[name] = median_time(lambda: explainer(x, targets), args.repeats)
        except Exception as error:  # a method this Xplique lacks or refuses: say so
            times[f"{name} error"] = f"{type(error).__name__}: {error}"[:200]
    times["versions"] = (f"xplique {xplique.__version__}, tensorflow {tf.__version__}, "
                         f"keras {keras.__version__}")
    print(json.dumps(times))


if __name__ == "__main__":
    main()
