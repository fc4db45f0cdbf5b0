"""Where the backends' maps part on a real architecture: layer by layer.

The mini-Xception (``saved_models/mini_xception.hdf5``: legacy HDF5, BatchNorm,
SeparableConv2D, 1×1 stride-2 shortcuts, a softmax head) on 8 held-out 64×64 digits, in
one process per backend (TensorFlow unimportable in the JAX and PyTorch ones). Printed,
against TensorFlow, in one run:

- every layer's output: the largest difference relative to the layer's largest value;
- every ReLU: how many units have opposite signs on the two backends (a flipped gate
  changes the gradient by that unit's whole contribution), and how many lie within
  1e-5 of the layer's scale of zero (where float32 rounding alone can flip them);
- every method's map: the largest difference relative to the map's largest magnitude
  (gradient, Integrated Gradients, SmoothGrad, DANCE on the gradient, Grad-CAM,
  occlusion).

TensorFlow with ``TF_ENABLE_ONEDNN_OPTS=0`` (its own kernels without oneDNN) is a column
too: how far two TensorFlow configurations on the same CPU differ is the yardstick for
how far two backends may.

Run: .venv/bin/python benchmarks/parity_layers.py
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

WORKER = r"""
import sys
if sys.argv[2] not in ("tensorflow", "tensorflow_no_onednn"):
    sys.modules["tensorflow"] = None
import numpy as np, keras, keras_dance as kd
model = kd.datasets.load_model("mini_xception")
x = kd.datasets.load_digits(size=64)[2][:8]
targets = np.arange(8) % 10
out = {}
probe = keras.Model(model.inputs, [layer.output for layer in model.layers[1:]])
for layer, value in zip(model.layers[1:], probe(x)):
    out["layer/" + layer.name] = keras.ops.convert_to_numpy(value)
pools = [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
for layer, value in zip(pools, keras.Model(model.inputs, [p.input for p in pools])(x)):
    out["pool/" + layer.name] = keras.ops.convert_to_numpy(value)
methods = {"gradient": "gradient", "integrated_gradients": "integrated_gradients",
           "smoothgrad": "smoothgrad", "gradcam": {"name": "gradcam", "config": {"layer": "add_3"}},
           "occlusion": {"name": "occlusion", "config": {"patch": 8}}}
for name, method in methods.items():
    out["map/" + name] = kd.Explainer(model, method=method).explain(x, targets)
dance = kd.Explainer(model, decoys=kd.DecoyConfig(layer="conv2d", patch=16, steps=20),
                     batch_size=256)
out["map/dance_gradient"] = dance.explain(x[:2], targets[:2])
np.savez(sys.argv[1], **{k.replace("/", "__"): v for k, v in out.items()})
"""


def run(backend, path):
    env = dict(os.environ, KERAS_BACKEND=backend.split("_")[0], TF_CPP_MIN_LOG_LEVEL="3",
               JAX_PLATFORMS="cpu")
    if backend == "tensorflow_no_onednn":
        env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    subprocess.run([sys.executable, "-c", WORKER, path, backend], env=env, check=True,
                   capture_output=True)
    return dict(np.load(path))


def windows(values, size=3, stride=2):
    """The 3×3 stride-2 "same" windows of a max-pool's input: (B, h, w, C, 9), padded
    with -inf (TensorFlow's convention: the extra row and column at the end)."""
    batch, height, width, channels = values.shape
    out_h, out_w = -(-height // stride), -(-width // stride)
    pad_h = max((out_h - 1) * stride + size - height, 0)
    pad_w = max((out_w - 1) * stride + size - width, 0)
    padded = np.pad(values, ((0, 0), (pad_h // 2, pad_h - pad_h // 2),
                             (pad_w // 2, pad_w - pad_w // 2), (0, 0)),
                    constant_values=-np.inf)
    parts = [padded[:, i:i + stride * out_h:stride, j:j + stride * out_w:stride]
             for i in range(size) for j in range(size)]
    return np.stack(parts, axis=-1)


def compare(reference, other):
    rows = {}
    for key, ref in reference.items():
        if key.startswith("pool__"):
            # Which element of each window a max-pool's gradient goes to: the argmax.
            ref_windows, windows_other = windows(ref), windows(other[key])
            top = np.sort(ref_windows, axis=-1)
            gap = top[..., -1] - top[..., -2]
            rows[key] = {"difference": 0.0, "windows": int(gap.size),
                         "argmax": int(np.sum(ref_windows.argmax(-1)
                                              != windows_other.argmax(-1))),
                         "near_ties": int(np.sum(gap <= 1e-6 * np.abs(ref).max()))}
            continue
        value = other[key]
        scale = np.abs(ref).max()
        row = {"difference": float(np.abs(value - ref).max() / max(scale, 1e-30))}
        if key.startswith("layer__") and "activation" in key:
            # A ReLU's input is the layer before; read its sign from the output: a unit
            # that is 0 on one backend and > 0 on the other is a flipped gate.
            row["flipped"] = int(np.sum((ref > 0) != (value > 0)))
            row["units"] = int(ref.size)
        rows[key] = row
    return rows


def main():
    import importlib.util

    backends = ["tensorflow_no_onednn"] + [b for b in ("jax", "torch")
                                           if importlib.util.find_spec(b) is not None]
    with tempfile.TemporaryDirectory() as folder:
        reference = run("tensorflow", os.path.join(folder, "tensorflow.npz"))
        results = {b: compare(reference, run(b, os.path.join(folder, f"{b}.npz")))
                   for b in backends}
    labels = {"tensorflow_no_onednn": "TF no oneDNN", "jax": "JAX", "torch": "PyTorch"}
    print("mini-Xception (legacy HDF5), 8 digits at 64x64: the largest difference from "
          "TensorFlow (oneDNN on), relative to the largest magnitude; ReLUs: units whose "
          "gate differs")
    print(f"{'':<34}" + "".join(f"{labels[b]:>22}" for b in backends))
    for key in reference:
        line = f"{key.replace('__', ' ', 1):<34}"
        for b in backends:
            row = results[b][key]
            text = f"{row['difference']:.1e}"
            if "flipped" in row:
                text += f" ({row['flipped']}/{row['units']} gates)"
            if "argmax" in row:
                text = f"{row['argmax']}/{row['windows']} argmax"
            line += f"{text:>22}"
        print(line)
    for key in reference:
        if key.startswith("pool__"):
            row = results[backends[-1]][key]
            print(f"{key}: {row['near_ties']} of {row['windows']} windows have their two "
                  f"largest values within 1e-6 of the layer's scale (ties the backends' "
                  f"rounding may break either way)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
