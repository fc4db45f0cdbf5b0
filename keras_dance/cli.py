"""``keras-dance``: the command line (absl flags). Thin: public API only.

Usage:
    keras-dance explain MODEL INPUTS... [--method=gradient] [--out=out/explain]
        [--decoy_layer=conv2 --patch=4 --epsilon=0.1 --aggregation=range]  (DANCE)
    keras-dance export MODEL --out=models/NAME/1 [--method=...] [--decoy_layer=...]
    keras-dance evaluate MODEL DATA [--method=...] [--decoy_layer=...] [--limit=64]
    keras-dance explain-dataset MODEL INPUT_GLOB... --out=DIR [--engine=local|ray|beam]
        [--workers=2 --inputs_per_shard=64] [--decoy_layer ... --patch ...]
    keras-dance COMMAND --help

explain: INPUTS are ``.npy`` batches or images (PNG/JPEG, scaled to [0, 1]); writes
``maps.npy`` (raw maps, in order), ``inputs.npy``, ``targets.npy`` and one
``*_overlay.png`` per input under ``--out``. For a token model with ``--vocabulary``,
INPUTS are text files of one sentence per line, and each sentence gets a
``*_words.html`` of highlighted words. export: a SavedModel for TF Serving.
evaluate: DATA is an ``.npz`` with ``x`` (and optionally ``y`` labels, ``masks`` ground
truth); prints the quality metrics of the method as a table. explain-dataset: one record
per input (id, target, predicted class, map, decoy statistics) in Parquet shards under
``--out``, each written whole or not at all; running it again resumes, and bad inputs go
to ``errors.jsonl``. MODEL may be an exported SavedModel directory.

Errors print one line and exit with status 1; nothing half-written is left in --out.
"""

import contextlib
import os
import sys
import zipfile
from pathlib import Path

from absl import app, flags

FLAGS = flags.FLAGS
# The method ids and the methods that take --layer come from the registry
# (kd.methods.register) when the command runs: see _describe_methods.
flags.DEFINE_string("method", "gradient", "Saliency method id (kd.methods.METHOD_NAMES).")
flags.DEFINE_string("layer", None, "Methods that read a layer's activations: the layer "
                    "(name, or nested path outer/inner; default: the last layer with "
                    "positions).")
flags.DEFINE_string("out", None, "Output directory (explain: default out/explain; export: "
                    "the SavedModel version directory, required).")
flags.DEFINE_integer("batch_size", 128, "Memory knob: most model rows per pass.")
flags.DEFINE_bool("unsafe", False, "Load models that need arbitrary code (Keras safe_mode=False).")
flags.DEFINE_string("decoy_layer", None, "DANCE: layer name (or index) of the decoy constraint; "
                    "unset for the plain method.")
flags.DEFINE_integer("patch", None, "DANCE: patch side (default: the smallest side >= 3 "
                     "that tiles the input with at most 256 patches).")
flags.DEFINE_integer("stride", None, "DANCE: patch stride (defaults to the patch).")
flags.DEFINE_float("epsilon", 0.1, "DANCE: tolerance on the layer, relative to max |F_l(x)|.")
flags.DEFINE_enum("aggregation", "range", ["range", "patch_range", "mean"],
                  "DANCE: decoy aggregation (see docs/quality.md, When to use DANCE).")
flags.DEFINE_bool("overwrite", False, "export: replace an existing SavedModel directory.")
flags.DEFINE_integer("limit", 64, "evaluate: use at most this many examples.")
flags.DEFINE_bool("verbose", False, "Keep TensorFlow's start-up and INFO log lines.")
flags.DEFINE_enum("backend", None, ["tensorflow", "jax", "torch"], "Keras backend of this run (default: "
                  "KERAS_BACKEND or Keras's config); the command restarts on it when Keras has "
                  "already loaded another. Dataset workers start on it too.")
flags.DEFINE_string("vocabulary", None, "Token models: a file of one token per line (id = "
                    "line number; 0 padding, 1 out-of-vocabulary). explain: INPUTS are text "
                    "files of sentences; export: adds the explain_text signature.")
flags.DEFINE_enum("engine", "local", ["local", "ray", "beam"], "explain-dataset: where the "
                  "work runs (local: this process; ray: Ray Data actors, local or the cluster "
                  "RAY_ADDRESS names; beam: Apache Beam's DirectRunner).")
flags.DEFINE_integer("workers", None, "explain-dataset: worker processes (default: 1 local, "
                     "2 on ray/beam).")
flags.DEFINE_integer("inputs_per_shard", 64, "explain-dataset: inputs per batch and per "
                     "output Parquet shard.")
flags.DEFINE_float("gpus_per_worker", 0, "explain-dataset, ray: GPUs per actor.")
flags.DEFINE_string("compilation_cache", None, "explain-dataset on JAX: a directory for "
                    "JAX's persistent compilation cache, shared by the workers (later "
                    "workers and jobs load what was compiled; ignored on other backends).")
flags.DEFINE_integer("pad_id", None, "Token models: the padding id, scored 0 (default: 0 "
                     "with --vocabulary or mask_zero).")

_EXPLAINER_FLAGS = ["method", "layer", "batch_size", "decoy_layer", "patch", "stride", "epsilon",
                    "aggregation", "unsafe", "verbose", "vocabulary", "pad_id"]
COMMANDS = {
    "explain": ("explain MODEL INPUTS... — maps, overlays and raw arrays for images or .npy",
                _EXPLAINER_FLAGS + ["out"]),
    "export": ("export MODEL --out=DIR — a SavedModel with serving_default, explain and "
               "explain_target signatures", _EXPLAINER_FLAGS + ["out", "overwrite"]),
    "explain-dataset": (
        "explain-dataset MODEL INPUT_GLOB... --out=DIR [--engine=local|ray|beam] — maps of "
        "every image or .npy input as resumable Parquet shards (kd.distributed.read_maps)",
        [f for f in _EXPLAINER_FLAGS if f != "vocabulary"]
        + ["out", "engine", "workers", "inputs_per_shard", "gpus_per_worker"]),
    "evaluate": ("evaluate MODEL DATA.npz — deletion, insertion, sparseness, fidelity "
                 "(and localisation with masks) as a table", _EXPLAINER_FLAGS + ["limit"]),
}


class UsageError(Exception):
    """A user error: printed as one line, exit status 1."""


def _load_inputs(paths, input_shape):
    """Image and ``.npy`` files as one batch and a name per input (the dataset engines
    read files with the same functions: ``kd.distributed``)."""
    import numpy as np

    from keras_dance.distributed import InputError, read_batch

    batches, names = [], []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"input file not found: {path}")
        try:
            batch = read_batch(str(path), input_shape)
        except InputError as error:
            raise UsageError(str(error)) from error
        batches.append(batch)
        names += ([f"{path.stem}_{i}" for i in range(len(batch))]
                  if path.suffix.lower() == ".npy" else [path.stem])
    try:
        return np.concatenate(batches, axis=0), names
    except ValueError as error:
        raise UsageError(f"inputs do not share one shape: {error}") from error


def _load_model(path):
    import keras

    if not Path(path).exists():
        raise UsageError(f"model not found: {path}")
    if Path(path).suffix == ".keras" and not zipfile.is_zipfile(path):
        raise UsageError(f"cannot load model {path}: not a valid .keras file (a zip archive); "
                         "it may be corrupt or truncated")
    from keras_dance.datasets import import_keras_hub_for

    try:  # registers keras_hub's classes for a file that names them
        import_keras_hub_for(path)
    except ImportError as error:
        raise UsageError(f"cannot load model {path}: it is a keras_hub model; "
                         "pip install 'keras-dance[hub]'") from error
    try:
        return keras.models.load_model(path, safe_mode=not FLAGS.unsafe)
    except Exception as error:
        hint = "" if FLAGS.unsafe else " (if it needs custom code you trust, add --unsafe)"
        raise UsageError(f"cannot load model {path}: {error}{hint}") from error


def _explainer_kwargs():
    """The ``kd.Explainer`` arguments the flags give."""
    import keras_dance as kd

    decoys = None
    if FLAGS.decoy_layer is not None:
        layer = FLAGS.decoy_layer
        layer = int(layer) if layer.lstrip("-").isdigit() else layer
        decoys = kd.DecoyConfig(layer=layer, patch=FLAGS.patch, stride=FLAGS.stride,
                                epsilon=FLAGS.epsilon)
    pad_id = FLAGS.pad_id
    if pad_id is None and FLAGS.vocabulary is not None:
        pad_id = 0
    method = FLAGS.method
    if FLAGS.layer is not None:
        layered = _layer_methods()
        if method not in layered:
            raise UsageError(f"--layer is for the CAM family, the methods that read a "
                             f"layer ({', '.join(layered)}); --method={method}")
        method = kd.methods.get({"name": method, "config": {"layer": FLAGS.layer}})
    return dict(method=method, decoys=decoys, aggregation=FLAGS.aggregation,
                batch_size=FLAGS.batch_size, pad_id=pad_id)


def _explainer(model):
    import keras_dance as kd

    try:
        explainer = kd.Explainer(model, **_explainer_kwargs())
    except (TypeError, ValueError) as error:
        if FLAGS.vocabulary is not None and FLAGS.pad_id is None and "`pad_id` only" in str(error):
            error = "a model that does not take token ids"  # the pad_id came from --vocabulary
            raise UsageError("--vocabulary is for token models (integer ids through an "
                             f"Embedding); this is {error}") from None
        raise UsageError(str(error)) from error
    if FLAGS.vocabulary is not None and not explainer.tokens:
        raise UsageError("--vocabulary is for token models (integer ids through an "
                         "Embedding); this model takes inputs of shape "
                         f"{explainer.input_shape}")
    return explainer


def _vocabulary():
    from keras_dance.export import read_vocabulary

    try:
        return read_vocabulary(FLAGS.vocabulary)
    except ValueError as error:
        raise UsageError(f"--vocabulary={FLAGS.vocabulary}: {error}") from error


def _load_sentences(paths, vocabulary, length):
    from keras_dance.export import tokenize

    sentences, names = _read_sentences(paths)
    words, ids = tokenize(sentences, vocabulary, length)
    return ids, words, names


def _read_sentences(paths):
    """The non-empty lines of text files, and a name for each."""
    sentences, names = [], []
    for path in paths:
        path = Path(path)
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"cannot read text file {path}: {error}") from error
        for i, line in enumerate(lines):
            if line.strip():
                sentences.append(line)
                names.append(f"{path.stem}_{i}")
    if not sentences:
        raise UsageError(f"no sentences in {', '.join(map(str, paths))} (one per line)")
    return sentences, names


def _explain_with_progress(explainer, x, targets):
    """Explains with the explainer's progress bar when there is more than a moment of work."""
    long_run = explainer.decoys is not None or len(x) > 64
    return explainer.explain(x, targets=targets, verbose=int(long_run))


def explain(argv):
    import numpy as np

    from keras_dance import viz
    from keras_dance._files import staging_directory

    if len(argv) < 2:
        raise UsageError("explain needs MODEL and at least one INPUT")
    from keras_dance.text import preprocessor_of

    explainer = _explainer(_load_model(argv[0]))
    words = None
    hub_text = (explainer.tokens and FLAGS.vocabulary is None
                and preprocessor_of(explainer.model) is not None)
    if hub_text and explainer.model_view.causal:
        raise UsageError("a causal LM is explained for a prompt and its continuation: "
                         "Explainer.explain_text(prompts, targets=continuations) in Python")
    if hub_text:  # text files, through the keras_hub model's own tokenizer
        sentences, names = _read_sentences(argv[1:])
        try:
            explanation = explainer.explain_text(sentences)
        except (TypeError, ValueError) as error:
            raise UsageError(str(error)) from error
        x, maps, targets = explanation.ids, explanation.scores, explanation.targets
        words = [explanation.words(i) for i in range(len(explanation))]
    elif explainer.tokens:
        if FLAGS.vocabulary is None:
            x, names = _load_inputs(argv[1:], explainer.input_shape)  # .npy batches of ids
        else:
            x, words, names = _load_sentences(argv[1:], _vocabulary(), explainer.input_shape[0])
    else:
        x, names = _load_inputs(argv[1:], explainer.input_shape)
    if not hub_text:
        try:
            targets = explainer.predict_classes(x)
            maps = _explain_with_progress(explainer, x, targets)
        except (TypeError, ValueError) as error:
            raise UsageError(str(error)) from error

    out = Path(FLAGS.out or "out/explain")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out={out} is a file; expected a directory")
    try:
        with staging_directory(out.parent, ".keras-dance-") as staging:
            np.save(staging / "maps.npy", maps)
            np.save(staging / "inputs.npy", x)
            np.save(staging / "targets.npy", targets)
            label = explainer.method.name + (" + decoys" if explainer.decoys is not None else "")
            if hub_text:  # the tokenizer's tokens, padding and special tokens left out
                for name, pairs in zip(names, words):
                    viz.text([t for t, _ in pairs], np.array([v for _, v in pairs])).save(
                        staging / f"{name}_words.html")
            elif words is not None:
                for name, tokens, saliency in zip(names, words, maps):
                    viz.text(tokens, saliency).save(staging / f"{name}_words.html")
            elif not explainer.tokens:
                for name, image, saliency, target in zip(names, x, maps, targets):
                    viz.save_overlay(staging / f"{name}_overlay.png", image, saliency,
                                     title=f"{label}, class {target}")
            out.mkdir(exist_ok=True)
            written = []
            for item in sorted(staging.iterdir()):
                os.replace(item, out / item.name)
                written.append(item.name)
    except OSError as error:
        raise UsageError(f"cannot write to --out={out}: {error}") from error
    if explainer.decoys is not None:
        print(f"decoys: {explainer.decoys.num_decoys} per input; {explainer.decoys.reason}")
    print(f"explained {len(x)} inputs with {explainer.method.name}; predicted classes "
          f"{targets.tolist()}")
    shown = (f"{len(names)} highlighted sentences (*_words.html)" if words is not None else
             "" if explainer.tokens else f"{len(names)} overlays (*_overlay.png)")
    print(f"wrote {len(written)} files to {out}/: maps.npy (raw maps {maps.shape}), "
          f"inputs.npy, targets.npy{', ' + shown if shown else ''}")


def export(argv):
    if len(argv) != 1:
        raise UsageError("export needs exactly one MODEL")
    if not FLAGS.out:
        raise UsageError("export needs --out=DIR (the SavedModel version directory, e.g. "
                         "models/digits/1)")
    explainer = _explainer(_load_model(argv[0]))
    try:
        path = Path(FLAGS.out)
        vocabulary = None if FLAGS.vocabulary is None else _vocabulary()
        explainer.export(path, overwrite=FLAGS.overwrite, vocabulary=vocabulary)
    except (ValueError, NotImplementedError) as error:  # PyTorch: no SavedModel export
        raise UsageError(str(error)) from error
    except FileExistsError as error:
        raise UsageError(f"{error}; pass --overwrite to replace it") from error
    except OSError as error:
        raise UsageError(f"cannot write to --out={FLAGS.out}: {error}") from error
    print(f"exported {argv[0]} ({explainer.method.name}"
          f"{' + decoys' if explainer.decoys is not None else ''}) to {path}/ with signatures "
          f"serving_default, explain, explain_target"
          f"{', explain_text' if FLAGS.vocabulary is not None else ''}")


def evaluate(argv):
    import numpy as np

    import keras_dance as kd

    if len(argv) != 2:
        raise UsageError("evaluate needs MODEL and DATA (an .npz with x, optional y and masks)")
    model = _load_model(argv[0])
    explainer = _explainer(model)
    path = Path(argv[1])
    if not path.is_file():
        raise UsageError(f"data file not found: {path}")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise UsageError(f"{path} is not an .npz archive; expected one with an array "
                             "named x (and optionally y, masks)")
        x = np.asarray(data["x"], np.int32 if explainer.tokens else np.float32)[:FLAGS.limit]
        y = np.asarray(data["y"], np.int32)[:FLAGS.limit] if "y" in data else None
        masks = np.asarray(data["masks"])[:FLAGS.limit] if "masks" in data else None
    except (KeyError, ValueError, OSError) as error:
        raise UsageError(f"cannot read {path} (needs an array named x): {error}") from error
    try:
        targets = explainer.predict_classes(x) if y is None else y
        maps = _explain_with_progress(explainer, x, targets)
    except (TypeError, ValueError) as error:
        raise UsageError(str(error)) from error
    try:
        # Token models: words are deleted by the padding token; fidelity does not apply.
        pad = (explainer.model_view.pad_id or 0) if explainer.tokens else 0.0
        rows = [
            ("deletion AUC (lower is better)",
             kd.metrics.deletion(model, x, maps, targets, baseline=pad)),
            ("insertion AUC (higher is better)",
             kd.metrics.insertion(model, x, maps, targets, baseline=pad)),
            ("sparseness, Gini (higher is sparser)", kd.metrics.sparseness(maps)),
        ]
        if not explainer.tokens:
            rows.append(("fidelity (lower is better)",
                         kd.metrics.fidelity(model, x, maps, targets)))
        if masks is not None:
            rows.append(("relevance mass in ground truth",
                         kd.metrics.relevance_mass(maps, masks)))
            rows.append(("pointing game",
                         kd.metrics.pointing_game(maps, masks).astype(np.float32)))
    except (TypeError, ValueError) as error:
        raise UsageError(f"{path}: {error}") from error
    name = explainer.method.name + (" + decoys" if explainer.decoys is not None else "")
    print(f"{name} on {len(x)} examples of {path.name}")
    width = max(len(label) for label, _ in rows)
    print(f"{'metric':<{width}}  {'mean':>8}  {'std err':>8}")
    for label, values in rows:
        se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
        print(f"{label:<{width}}  {values.mean():8.4f}  {se:8.4f}")


def explain_dataset(argv):
    import keras_dance as kd

    if len(argv) < 2:
        raise UsageError("explain-dataset needs MODEL and at least one INPUT_GLOB")
    if not FLAGS.out:
        raise UsageError("explain-dataset needs --out=DIR (results are resumed from there)")
    model = argv[0]
    if not Path(model).exists():
        raise UsageError(f"model not found: {model}")
    if FLAGS.vocabulary is not None:
        raise UsageError("explain-dataset reads images and .npy files; --vocabulary (text "
                         "files) is for explain")
    try:
        if Path(model).is_dir():  # an exported SavedModel carries its own settings
            spec = kd.distributed.ExplainerSpec(model)
        else:
            if Path(model).suffix == ".keras" and not zipfile.is_zipfile(model):
                raise UsageError(f"cannot load model {model}: not a valid .keras file")
            spec = kd.distributed.ExplainerSpec(model, safe_mode=not FLAGS.unsafe,
                                                compilation_cache=FLAGS.compilation_cache,
                                                **_explainer_kwargs())
        # Beam's and Ray's worker processes write their start-up lines straight to the
        # terminal; failures still reach us as exceptions.
        quiet = _stderr_silenced() if FLAGS.engine != "local" and not FLAGS.verbose else (
            contextlib.nullcontext())
        with quiet:
            summary = kd.distributed.explain_files(
                argv[1:], spec, FLAGS.out, engine=FLAGS.engine, workers=FLAGS.workers,
                inputs_per_shard=FLAGS.inputs_per_shard,
                gpus_per_worker=FLAGS.gpus_per_worker, progress=True)
    except (TypeError, ValueError, ImportError) as error:
        raise UsageError(str(error)) from error
    except OSError as error:
        raise UsageError(f"cannot write to --out={FLAGS.out}: {error}") from error
    print(summary)
    if summary.errors:
        shown = "; ".join(f"{key}: {reason}" for key, reason in summary.errors[:3])
        more = f" (and {len(summary.errors) - 3} more)" if len(summary.errors) > 3 else ""
        print(f"errors: {shown}{more}")
    print(f"maps: kd.distributed.read_maps({str(FLAGS.out)!r})")


def _layer_methods():
    from keras_dance import methods

    return [name for name in methods.METHOD_NAMES if methods.registered()[name].takes_layer]


def _describe_methods():
    """Sets --method's and --layer's help from the registry (every registered method)."""
    from keras_dance import methods

    FLAGS["method"].help = f"Saliency method id: {', '.join(methods.METHOD_NAMES)}."
    FLAGS["layer"].help = (f"{', '.join(_layer_methods())}: the layer whose activations are "
                           "read (name, or nested path outer/inner; default: the last "
                           "layer with positions).")


def _command_help(name):
    _describe_methods()
    summary, names = COMMANDS[name]
    lines = [f"usage: keras-dance {summary}", "", "flags:"]
    for flag in names:
        item = FLAGS[flag]
        lines.append(f"  --{flag}: {item.help} (default: {item.default!r})")
    return "\n".join(lines)


def main(argv):
    args = argv[1:]
    if not args or args[0] not in COMMANDS:
        print(f"usage: keras-dance {{{'|'.join(COMMANDS)}}} ... (keras-dance COMMAND --help)",
              file=sys.stderr)
        return 2
    if not FLAGS.verbose:
        # absl sets its verbosity from its flags when app.run parses them: lower it here.
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.WARNING)
    try:
        {"explain": explain, "export": export, "evaluate": evaluate,
         "explain-dataset": explain_dataset}[args[0]](args[1:])
    except UsageError as error:
        print(f"keras-dance: error: {error}", file=sys.stderr)
        return 1
    return 0


@contextlib.contextmanager
def _stderr_silenced():
    """Points file descriptor 2 at /dev/null (C++ libraries write there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _quiet_start_up():
    """The framework's C++/absl start-up lines and INFO logs stay out of the user's terminal
    (``--verbose`` keeps them): the C++ log level is raised before TensorFlow loads, and
    the lines it prints while loading, before any log level applies, are discarded."""
    import logging

    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # errors still reach us as Python exceptions
    with _stderr_silenced():
        import keras  # noqa: F401

        from keras_dance import backend

        try:
            backend.module()  # the backend's framework (TensorFlow's C++ start-up) loads here
        except RuntimeError:
            pass  # a backend the seam lacks: the command says so when it builds an explainer
    # e.g. SavedModel's renaming notes, Beam's and Ray's INFO lines
    for name in ("keras_dance", "absl", "tensorflow", "apache_beam", "ray"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _chosen_backend(argv):
    """``--backend=NAME`` / ``--backend NAME`` from the raw arguments (absl parses them
    only after Keras, whose backend is fixed at import, has loaded)."""
    for index, arg in enumerate(argv[1:], start=1):
        if arg.startswith("--backend="):
            return arg.split("=", 1)[1]
        if arg == "--backend" and index + 1 < len(argv):
            return argv[index + 1]
    return None


def _restart_on_backend(argv):
    """Restarts this command with ``KERAS_BACKEND`` set when ``--backend`` names another
    backend than the loaded one (an unknown name is left to absl's flag check)."""
    chosen = _chosen_backend(argv)
    if chosen not in ("tensorflow", "jax", "torch"):
        return
    import keras

    if keras.config.backend() != chosen:
        env = dict(os.environ, KERAS_BACKEND=chosen)
        os.execve(sys.executable, [sys.executable, "-m", "keras_dance.cli", *argv[1:]], env)


def run():
    argv = sys.argv
    _restart_on_backend(argv)
    if "--verbose" not in argv:
        _quiet_start_up()
    if len(argv) >= 3 and argv[1] in COMMANDS and argv[2] in ("--help", "-h", "help"):
        print(_command_help(argv[1]))
        return
    if any(arg in ("--help", "-h", "--helpfull") for arg in argv[1:]):
        _describe_methods()
    app.run(lambda argv: sys.exit(main(argv)))


if __name__ == "__main__":
    run()
