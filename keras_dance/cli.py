"""``keras-dance``: the command line (absl flags). Thin: public API only.

Usage:
    keras-dance explain MODEL INPUTS... [--method=gradient] [--out=out] [--batch_size=128]
        [--decoy_layer=conv2 --patch=4 --epsilon=0.1 --aggregation=range]  (DANCE)

INPUTS are ``.npy`` batches or images (PNG/JPEG, scaled to [0, 1]). Writes, under
``--out``: ``maps.npy`` (raw maps, one per input, in order), ``inputs.npy``,
``targets.npy`` and one ``*_overlay.png`` per input.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("method", "gradient", "Saliency method id.")
flags.DEFINE_string("out", "out", "Output directory.")
flags.DEFINE_integer("batch_size", 128, "Memory knob: most model rows per pass.")
flags.DEFINE_bool("unsafe", False, "Load models that need arbitrary code (Keras safe_mode=False).")
flags.DEFINE_string("decoy_layer", None, "DANCE: layer name (or index) of the decoy constraint; "
                    "unset for the plain method.")
flags.DEFINE_integer("patch", 3, "DANCE: patch side.")
flags.DEFINE_integer("stride", None, "DANCE: patch stride (defaults to the patch).")
flags.DEFINE_float("epsilon", 0.1, "DANCE: tolerance on the layer, relative to max |F_l(x)|.")
flags.DEFINE_enum("aggregation", "range", ["range", "mean"], "DANCE: decoy aggregation.")

COMMANDS = ("explain",)


class UsageError(Exception):
    """A user error: printed as one line, exit status 2."""


def _load_inputs(paths, input_shape):
    import numpy as np

    batches, names = [], []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"input file not found: {path}")
        if path.suffix.lower() == ".npy":
            try:
                array = np.load(path, allow_pickle=False)
            except Exception as error:
                raise UsageError(f"cannot read {path}: {error}") from error
            if array.ndim == len(input_shape):
                array = array[None]
            batches.append(array.astype("float32"))
            names += [f"{path.stem}_{i}" for i in range(len(array))]
            continue
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                image = image.convert("L" if input_shape[-1] == 1 else "RGB")
                array = np.asarray(image, dtype="float32") / 255.0
        except (UnidentifiedImageError, OSError) as error:
            raise UsageError(f"cannot read image {path}: {error}") from error
        if array.ndim == 2:
            array = array[..., None]
        if tuple(array.shape) != tuple(input_shape):
            raise UsageError(
                f"image {path} has shape {array.shape}; the model expects {tuple(input_shape)}"
            )
        batches.append(array[None])
        names.append(path.stem)
    return np.concatenate(batches, axis=0), names


def _load_model(path, unsafe):
    import keras

    if not Path(path).exists():
        raise UsageError(f"model not found: {path}")
    try:
        return keras.models.load_model(path, safe_mode=not unsafe)
    except Exception as error:
        raise UsageError(f"cannot load model {path}: {error}") from error


def explain(argv):
    import numpy as np

    import keras_dance as kd
    from keras_dance import viz

    if len(argv) < 2:
        raise UsageError("explain needs MODEL and at least one INPUT")
    model = _load_model(argv[0], FLAGS.unsafe)
    decoys = None
    try:
        if FLAGS.decoy_layer is not None:
            layer = int(FLAGS.decoy_layer) if FLAGS.decoy_layer.lstrip("-").isdigit() else FLAGS.decoy_layer
            decoys = kd.DecoyConfig(layer=layer, patch=FLAGS.patch, stride=FLAGS.stride,
                                    epsilon=FLAGS.epsilon)
        explainer = kd.Explainer(model, method=FLAGS.method, decoys=decoys,
                                 aggregation=FLAGS.aggregation, batch_size=FLAGS.batch_size)
    except (TypeError, ValueError) as error:
        raise UsageError(str(error)) from error
    x, names = _load_inputs(argv[1:], explainer.input_shape)
    try:
        targets = explainer.predict_classes(x)
        maps = explainer.explain(x, targets=targets)
    except (TypeError, ValueError) as error:
        raise UsageError(str(error)) from error

    out = Path(FLAGS.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".keras-dance-", dir=out.parent))
    try:
        np.save(staging / "maps.npy", maps)
        np.save(staging / "inputs.npy", x)
        np.save(staging / "targets.npy", targets)
        label = explainer.method.name + (" + decoys" if decoys is not None else "")
        for name, image, saliency, target in zip(names, x, maps, targets):
            viz.save_overlay(staging / f"{name}_overlay.png", image, saliency,
                             title=f"{label}, class {target}")
        out.mkdir(exist_ok=True)
        written = []
        for item in sorted(staging.iterdir()):
            os.replace(item, out / item.name)
            written.append(item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if explainer.decoys is not None:
        print(f"decoys: {explainer.decoys.num_decoys} per input; {explainer.decoys.reason}")
    print(f"explained {len(x)} inputs with {explainer.method.name}; predicted classes "
          f"{targets.tolist()}")
    print(f"wrote {len(written)} files to {out}/: maps.npy (raw maps {maps.shape}), "
          f"inputs.npy, targets.npy, {len(names)} overlays (*_overlay.png)")


def main(argv):
    args = argv[1:]
    if not args or args[0] not in COMMANDS:
        print(f"usage: keras-dance {{{'|'.join(COMMANDS)}}} ... (--help for flags)",
              file=sys.stderr)
        return 2
    try:
        {"explain": explain}[args[0]](args[1:])
    except UsageError as error:
        print(f"keras-dance: error: {error}", file=sys.stderr)
        return 1
    return 0


def run():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(lambda argv: sys.exit(main(argv)))


if __name__ == "__main__":
    run()
