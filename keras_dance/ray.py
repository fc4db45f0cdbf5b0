"""Ray Data: explain a ``ray.data.Dataset`` with an actor pool (``pip install
'keras-dance[ray]'``).

Each actor loads the model once and explains batches of rows; each batch becomes one
Parquet shard of the output, written by the actor whole or not at all. Ray restarts a
killed actor and retries its batch; the shard's name is a function of its ids, so a retry
rewrites the same shard. The same code runs on a local Ray instance and on any cluster
``ray.init()`` connects to (``RAY_ADDRESS``).

Example:
    >>> import ray
    >>> ds = ray.data.read_images("images/", include_paths=True)
    >>> spec = kd.distributed.ExplainerSpec("model.keras", method="integrated_gradients")
    >>> kd.ray.explain_dataset(ds, spec, "out/maps", concurrency=4, num_gpus=1)
"""

import numpy as np

from keras_dance.distributed import ExplainerSpec, Job, Output, register_engine

EXTRA = "pip install 'keras-dance[ray]'"


def require():
    """Imports Ray, or raises an ImportError that names the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        raise ImportError(f"kd.ray needs Ray Data: {EXTRA}") from error
    return ray


class _ExplainActor:
    """One per actor process: the model, loaded once, and the output it writes to."""

    def __init__(self, spec, out, id_column=None, input_column=None, target_column=None):
        self.explainer = spec.load()
        self.output = Output(out)
        self.columns = (id_column, input_column, target_column)
        # What earlier runs wrote (resume). Read once: a batch retried after this actor
        # started and found already written is rewritten under the same name.
        self.done = self.output.done_ids() if input_column is not None else set()

    def __call__(self, batch):
        id_column, input_column, target_column = self.columns
        if input_column is None:  # items named by files (kd.distributed.explain_files)
            rows = self.explainer.process_items(batch["id"], batch["path"], batch["index"],
                                                self.output)
        else:
            ids = [_text(key) for key in batch[id_column]]
            keep = [i for i, key in enumerate(ids) if key not in self.done]
            skipped = [key for key in ids if key in self.done]
            targets = None if target_column is None else np.asarray(batch[target_column])[keep]
            rows = self.explainer.process([ids[i] for i in keep],
                                          [batch[input_column][i] for i in keep],
                                          self.output, targets=targets)
            from keras_dance.distributed import summary

            extra = summary([], [], skipped)
            rows = {key: list(rows[key]) + extra[key] for key in rows}
        return {key: np.asarray(value) for key, value in rows.items()}


def _text(key):
    return key.decode() if isinstance(key, bytes) else str(key)


def _columns(dataset, id_column, input_column):
    """The id and input columns: given, or the usual ones of Ray's readers."""
    names = dataset.schema().names
    if input_column is None:
        input_column = next((c for c in ("input", "image", "data") if c in names), None)
    if id_column is None:
        id_column = next((c for c in ("id", "path", "key") if c in names), None)
    for argument, value in (("input_column", input_column), ("id_column", id_column)):
        if value is None or value not in names:
            raise ValueError(
                f"Expected `{argument}` to name a column of the dataset (ids make results "
                f"resumable: read files with include_paths=True). Received: "
                f"{argument}={value!r}, columns {names}")
    return id_column, input_column


def _map(dataset, spec, out, workers, inputs_per_shard, gpus_per_worker, kwargs):
    """The actor-pool map: one actor per worker, ``spec.threads`` CPUs each."""
    import ray.data

    # The settings travel inside the class (pickled by value), not as constructor
    # arguments in the object store, which an actor restart could not count on.
    arguments = (spec, str(out))

    def __init__(self):
        _ExplainActor.__init__(self, *arguments, **kwargs)

    actor = type("ExplainActor", (_ExplainActor,), {"__init__": __init__})
    return dataset.map_batches(
        actor, batch_size=inputs_per_shard, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        # Actors start on the job's Keras backend, whatever the cluster's environment.
        runtime_env={"env_vars": {"KERAS_BACKEND": spec.backend}},
        num_cpus=(spec.threads or 1) if not gpus_per_worker else None,
        num_gpus=gpus_per_worker or None)


def _drain(result, job):
    """Runs the map, counting its summary rows; Ray Data's own progress bars and plan
    logs stay quiet meanwhile (ours shows inputs, rate and time left)."""
    import logging

    import ray.data

    context = ray.data.DataContext.get_current()
    logger = logging.getLogger("ray.data")
    saved = context.enable_progress_bars, logger.level
    context.enable_progress_bars = False
    logger.setLevel(logging.WARNING)
    try:
        for rows in result.iter_batches(batch_size=None, batch_format="numpy"):
            job.update(rows)
    finally:
        context.enable_progress_bars = saved[0]
        logger.setLevel(saved[1])


def _connect(options):
    ray = require()
    if not ray.is_initialized():
        ray.init(**{"include_dashboard": False, "log_to_driver": False,
                    "logging_level": "warning", **options})
    return ray


def run_items(items, spec, job, workers, inputs_per_shard, gpus_per_worker, options):
    """``kd.distributed.explain_files`` on Ray: the file items as a dataset, read and
    explained by the actors."""
    ray = _connect(options)
    ids, paths, indices = (list(column) for column in zip(*items))
    dataset = ray.data.from_items(
        [{"id": i, "path": p, "index": n} for i, p, n in zip(ids, paths, indices)],
        override_num_blocks=max(1, min(len(ids) // max(1, inputs_per_shard), 200)))
    _drain(_map(dataset, spec, job.output.uri, workers, inputs_per_shard, gpus_per_worker,
                {}), job)


def explain_dataset(dataset, spec, out, *, id_column=None, input_column=None,
                    target_column=None, concurrency=2, num_gpus=0, num_cpus=None,
                    inputs_per_shard=64, progress=True):
    """Explains every row of a ``ray.data.Dataset`` with an actor pool; writes the maps
    to ``out`` (``kd.distributed.read_maps(out)`` reads them back).

    Rows whose id is already in ``out`` are skipped (resume); bad rows (wrong shape,
    NaN, outside the decoys' value range) go to ``out/errors.jsonl``.

    Args:
        dataset: a ``ray.data.Dataset`` from any source (``read_images(...,
            include_paths=True)``, ``read_numpy``, ``read_parquet``, ``read_tfrecords``,
            ``from_items``), one input per row.
        spec: a ``kd.distributed.ExplainerSpec``.
        out: the output directory (local, or a ``pyarrow`` URI the cluster reaches).
        id_column: the column of unique ids; None: "id", "path" or "key".
        input_column: the column of inputs (arrays, or flattened lists reshaped to the
            model's input shape), fed to the model as they are; None: "input", "image"
            or "data". Ray's ``read_images`` gives uint8 values in 0–255: scale them
            (``dataset.map_batches``) or give the spec a ``preprocess`` if the model
            expects [0, 1] (``explain_files`` scales image files to [0, 1] itself).
        target_column: a column of class indices to explain; None: the predicted class.
        concurrency: actors (worker processes). Defaults to 2.
        num_gpus: GPUs per actor (1: one actor per GPU; memory growth is on). Defaults to 0.
        num_cpus: CPUs per actor, and its TensorFlow threads (unless ``spec.threads`` is
            set); None: this machine's cores shared out between the actors (on CPU).
        inputs_per_shard: rows per batch and per output shard. Defaults to 64.
        progress: show a progress bar. Defaults to True.

    Returns:
        a ``kd.distributed.DatasetSummary``.
    """
    ray = require()
    if not isinstance(dataset, ray.data.Dataset):
        raise TypeError(f"Expected `dataset` to be a ray.data.Dataset. Received: "
                        f"{type(dataset).__name__}")
    if not isinstance(spec, ExplainerSpec):
        raise TypeError(f"Expected `spec` to be a kd.distributed.ExplainerSpec. Received: "
                        f"spec={spec!r}")
    from keras_dance.distributed import check_engine_arguments

    check_engine_arguments("ray", concurrency, inputs_per_shard, num_gpus)
    id_column, input_column = _columns(dataset, id_column, input_column)
    explainer = spec.load()  # the driver checks the spec before any actor starts
    job = Job(spec, out, None, explainer.input_shape, progress)
    if spec.threads is None and not num_gpus:
        import os

        spec = spec.with_threads(int(num_cpus or max(1, (os.cpu_count() or 1) // concurrency)))
    kwargs = dict(id_column=id_column, input_column=input_column, target_column=target_column)
    _drain(_map(dataset, spec, job.output.uri, int(concurrency), int(inputs_per_shard),
                num_gpus, kwargs), job)
    return job.finish()


register_engine("ray", run_items, require)
