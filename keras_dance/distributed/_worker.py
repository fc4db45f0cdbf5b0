"""What runs in a worker: a picklable spec, loaded once per process into a batch explainer."""

import hashlib
import inspect
import os
import pickle
import resource
from pathlib import Path

import numpy as np

_LOADED = {}  # spec key -> BatchExplainer: one model per worker process
_SAVED_MODEL_OPTIONS = ("method", "decoys", "aggregation", "batch_size", "preprocess",
                        "jit_compile", "input_shape", "embedding_layer", "token_reduction",
                        "pad_id")


def _explainer_arguments():
    from keras_dance.explainer import Explainer

    return [name for name in inspect.signature(Explainer.__init__).parameters
            if name not in ("self", "model")]


class ExplainerSpec:
    """Everything a worker needs to build the explainer, and nothing that cannot travel.

    Engines pickle the spec to their workers; each worker process loads the model once
    (``load``) and reuses it for every batch.

    Args:
        model: a ``.keras`` file, or a SavedModel directory written by
            ``Explainer.export`` / ``keras-dance export`` (its ``explain`` signature is
            used: the settings are the exported ones, and loading needs TensorFlow only).
            A local path or a URI TensorFlow reads (``gs://…``).
        safe_mode: Keras ``safe_mode`` when loading a ``.keras`` file. Defaults to True.
        threads: TensorFlow's intra-op threads per worker process (None: TensorFlow's
            default, every core). Engines that run several workers on one machine set
            it so that the workers share the cores instead of oversubscribing them.
        compilation_cache: JAX only: a directory (local or shared by the workers) for
            JAX's persistent compilation cache, so that a worker loads the compiled
            functions another worker or an earlier job already compiled instead of
            compiling them again. Measured: a worker process on the mini-Xception took
            26 s with a warm cache against 47 s without (docs/dataset_scale.md). None:
            every process compiles for itself. TensorFlow and PyTorch ignore it.
            Defaults to None.
        **explainer_kwargs: ``kd.Explainer`` arguments (``method``, ``decoys``,
            ``aggregation``, ``batch_size``, ``preprocess``, ``input_shape``, …). They
            must pickle: a method name or ``kd.methods`` instance, a ``DecoyConfig`` whose
            layer is a name, index or path, a module-level ``preprocess`` function.

    Example:
        >>> spec = kd.distributed.ExplainerSpec(
        ...     "saved_models/digits_cnn.keras", method="gradient",
        ...     decoys=kd.DecoyConfig(layer="conv2", patch=4))
    """

    def __init__(self, model, *, safe_mode=True, threads=None, compilation_cache=None,
                 **explainer_kwargs):
        if not isinstance(model, (str, os.PathLike)) or not str(model):
            raise TypeError("Expected `model` to be the path of a .keras file or an exported "
                            f"SavedModel directory. Received: model={model!r}")
        model = str(model)
        self.saved_model = not model.endswith(".keras")
        if "://" not in model:
            path = Path(model)
            if not path.exists():
                raise ValueError(f"Expected `model` to exist. Received: model={model!r}")
            if self.saved_model and not (path / "saved_model.pb").is_file():
                raise ValueError(
                    "Expected `model` to be a .keras file or a SavedModel directory (with "
                    f"saved_model.pb). Received: model={model!r}")
            model = str(path.resolve())
        unknown = sorted(set(explainer_kwargs) - set(_explainer_arguments()))
        if unknown:
            raise TypeError(f"Expected kd.Explainer arguments. Received: unknown "
                            f"{', '.join(map(repr, unknown))}")
        if self.saved_model and set(explainer_kwargs) & set(_SAVED_MODEL_OPTIONS):
            given = sorted(set(explainer_kwargs) & set(_SAVED_MODEL_OPTIONS))
            raise ValueError(
                "Expected no explainer settings with an exported SavedModel (its explain "
                f"signature carries them). Received: {', '.join(given)} for model={model!r}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"Expected `threads` to be None or a positive int. Received: "
                             f"threads={threads!r}")
        if compilation_cache is not None and (
                not isinstance(compilation_cache, (str, os.PathLike)) or not str(compilation_cache)):
            raise TypeError("Expected `compilation_cache` to be None or a directory path. "
                            f"Received: compilation_cache={compilation_cache!r}")
        self.model = model
        self.safe_mode = safe_mode
        self.threads = threads
        self.compilation_cache = None if compilation_cache is None else str(compilation_cache)
        self.explainer_kwargs = dict(explainer_kwargs)
        # The Keras backend of the process that made the spec: the job's backend, which
        # every worker must run (engines start their workers with it).
        self.backend = _keras_backend()
        try:
            self._key = hashlib.sha1(pickle.dumps(
                (model, safe_mode, threads, sorted(self.explainer_kwargs.items())))).hexdigest()
        except Exception as error:
            raise TypeError(
                "Expected explainer settings that pickle (engines send them to workers): a "
                "method name or kd.methods instance, a DecoyConfig whose layer is a name, "
                "index or path, a module-level preprocess function. Received: "
                f"{self.explainer_kwargs!r} ({error})") from error

    def with_threads(self, threads):
        """The same spec with ``threads`` set (the engines' per-worker share of cores)."""
        return ExplainerSpec(self.model, safe_mode=self.safe_mode, threads=threads,
                             compilation_cache=self.compilation_cache,
                             **self.explainer_kwargs)

    def settings(self):
        """What decides the maps, as JSON-able values: checked before a job resumes."""
        described = {"model": os.path.basename(self.model.rstrip("/")),
                     "model_sha256": _fingerprint(self.model)}
        for name, value in sorted(self.explainer_kwargs.items()):
            if name in ("batch_size", "jit_compile"):
                continue  # the memory knob and XLA change how, not what
            if hasattr(value, "get_config"):
                value = {"class": type(value).__name__, "config": value.get_config()}
            elif callable(value):
                value = f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', value)}"
            described[name] = _jsonable(value)
        return described

    def load(self):
        """The batch explainer for this spec, built once per process."""
        explainer = _LOADED.get(self._key)
        if explainer is None:
            explainer = _LOADED[self._key] = BatchExplainer(self)
        return explainer

    def __repr__(self):
        settings = ", ".join(f"{k}={v!r}" for k, v in sorted(self.explainer_kwargs.items()))
        return f"ExplainerSpec({self.model!r}{', ' + settings if settings else ''})"


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)


def _fingerprint(model):
    """sha256 over the model's file(s): a retrained model is a different job. ``model``
    is a local path or a URI ``pyarrow.fs`` reads (``gs://``, ``s3://``, ``hdfs://``)."""
    from pyarrow import fs

    if "://" in model:
        filesystem, root = fs.FileSystem.from_uri(model)
    else:
        filesystem, root = fs.LocalFileSystem(), os.path.abspath(model)
    info = filesystem.get_file_info(root)
    if info.type == fs.FileType.Directory:
        found = filesystem.get_file_info(fs.FileSelector(root, recursive=True))
        paths = sorted(item.path for item in found if item.type == fs.FileType.File)
    else:
        paths = [root]
    digest = hashlib.sha256()
    for path in paths:
        digest.update(os.path.relpath(path, root).encode())
        with filesystem.open_input_stream(path) as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _keras_backend():
    import keras

    return keras.config.backend()


def configure_devices(threads=None, compilation_cache=None):
    """Per-process set-up for a worker (``keras_dance.backend``'s ``configure_devices``):
    accelerator memory on demand (workers sharing a GPU, or a GPU shared with other
    libraries, do not each claim all of it); with several GPUs visible and none chosen by
    the engine (Ray sets ``CUDA_VISIBLE_DEVICES`` per actor), one GPU per process;
    ``threads`` intra-op threads; on JAX, the persistent ``compilation_cache``. Settings
    the framework no longer accepts (it has started) are left as they are."""
    from keras_dance import backend

    backend.configure_devices(threads, compilation_cache)


class BatchExplainer:
    """Numpy in, records out: the engine-neutral unit every engine runs.

    ``explain(ids, inputs)`` validates every input on its own (shape, dtype, NaN/Inf, the
    decoys' value range, token ids): bad ones become ``(id, reason)`` errors and the
    rest are explained together.
    """

    def __init__(self, spec):
        backend = _keras_backend()
        if getattr(spec, "backend", backend) != backend:
            raise RuntimeError(
                f"Expected the worker on the job's Keras backend {spec.backend!r}. Received: "
                f"a worker on {backend!r}; start the workers with KERAS_BACKEND="
                f"{spec.backend} (the backend is fixed when Keras is imported)")
        configure_devices(spec.threads, getattr(spec, "compilation_cache", None))
        self.spec = spec
        if spec.saved_model:
            from keras_dance.export import ServedExplainer

            self._served = ServedExplainer(spec.model)
            self.input_shape, self.dtype = self._served.input_shape, self._served.dtype
            self.explainer = None
        else:
            import keras

            from keras_dance.explainer import Explainer

            model = keras.models.load_model(spec.model, safe_mode=spec.safe_mode)
            self.explainer = Explainer(model, **spec.explainer_kwargs)
            self.input_shape = tuple(self.explainer.input_shape)
            self.dtype = np.int32 if self.explainer.tokens else np.float32

    def _check(self, value):
        """One input as an array of the model's input shape, or a ValueError/TypeError."""
        array = np.asarray(value)
        if array.dtype == object:  # Arrow list columns arrive as arrays of arrays
            array = np.stack(list(array)) if array.ndim == 1 and len(array) else array
        if array.dtype.kind not in "biuf":
            raise TypeError(f"holds {array.dtype} values; expected numbers")
        if array.shape != self.input_shape:
            if array.size != int(np.prod(self.input_shape)):
                raise ValueError(f"has shape {array.shape}; the model expects "
                                 f"{self.input_shape}")
            array = array.reshape(self.input_shape)  # flattened rows (Parquet lists)
        if self.explainer is not None:
            self.explainer.validate(array[None])  # NaN/Inf, value range, token ids
        else:
            if not np.all(np.isfinite(array)):
                raise ValueError("contains NaN or Inf")
        return array.astype(self.dtype)

    def explain(self, ids, inputs, targets=None):
        """``(records, errors)``: ``records`` a dict of columns for ``Output.write_maps``
        (``id``, ``target``, ``predicted``, ``map`` and the decoy statistics), ``errors``
        ``[(id, reason)]`` for the inputs that could not be explained."""
        good, rows, errors = [], [], []
        for index, (key, value) in enumerate(zip(ids, inputs)):
            try:
                rows.append(self._check(value))
                good.append(index)
            except (TypeError, ValueError) as error:
                errors.append((str(key), f"invalid input: {error}"))
        records = {"id": [str(ids[i]) for i in good]}
        if not good:
            records.update(target=[], predicted=[], map=np.zeros((0,) + self.input_shape))
            return records, errors
        batch = np.stack(rows)
        wanted = None if targets is None else np.asarray(targets, np.int32)[good]
        if self.explainer is None:
            outputs = self._served(batch, wanted)
        else:
            outputs = self._run_explainer(batch, wanted)
        records.update(outputs)
        return records, errors

    def _run_explainer(self, batch, targets):
        explainer = self.explainer
        maps, details = explainer.explain(batch, targets=targets, return_details=True)
        # With no targets, explain resolved the predicted classes itself: no second pass.
        predicted = (details["targets"] if targets is None
                     else explainer.predict_classes(batch))
        records = {"target": details["targets"], "predicted": predicted, "map": maps}
        for name in ("num_decoys", "feasible_fraction", "mean_perturbation"):
            if name in details:
                records[name] = details[name]
        return records

    def process(self, ids, inputs, output, targets=None, errors=()):
        """Explains a batch and writes its shard (and error shard: ``errors`` found before,
        plus the inputs found bad here); returns the summary rows (``summary``) the
        engines report progress with."""
        records, bad = self.explain(ids, inputs, targets)
        errors = list(errors) + bad
        output.write_maps(records)
        output.write_errors(errors)
        return summary(records["id"], errors)

    def process_items(self, ids, paths, indices, output):
        """``process`` for inputs named by files (``list_inputs`` items), read here: an
        unreadable file is an error of its id, not of the batch."""
        from keras_dance.distributed._inputs import InputError, read_item

        keys, values, errors = [], [], []
        for key, path, index in zip(ids, paths, indices):
            try:
                values.append(read_item(str(path), int(index), self.input_shape))
                keys.append(str(key))
            except InputError as error:
                errors.append((str(key), str(error)))
        return self.process(keys, values, output, errors=errors)


def summary(done, errors, skipped=()):
    """Per-input summary rows: ``status`` "explained", "error" or "skipped" (already in
    the output), the worker's process id and its peak resident memory (MB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux
    ids = list(done) + [key for key, _ in errors] + list(skipped)
    status = (["explained"] * len(done) + ["error"] * len(errors)
              + ["skipped"] * len(skipped))
    return {"id": [str(i) for i in ids], "status": status,
            "worker": [os.getpid()] * len(ids), "peak_rss_mb": [peak] * len(ids)}
