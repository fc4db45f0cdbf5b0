"""The driver side of a dataset job, shared by every engine: settings check, resume,
progress, the errors file and the summary."""

import dataclasses
import json
import os
import time

from keras_dance.distributed._shards import SETTINGS, Output

ENGINES = ("local", "ray", "beam")

#: Engine name -> ``run_items(items, spec, job, workers, inputs_per_shard,
#: gpus_per_worker, options)``, filled by ``register_engine`` (kd.ray and kd.beam call it
#: when imported); "local" runs in ``explain_files`` itself.
_RUNNERS = {}
#: The module that registers each engine, imported on first use as a plugin is (the
#: engines import this package; this package never imports them by name).
ENGINE_PLUGINS = {"ray": "keras_dance.ray", "beam": "keras_dance.beam"}


def register_engine(name, run_items, require=None):
    """Makes ``explain_files(engine=name)`` run ``run_items``; ``require()`` (optional)
    raises an ImportError naming the extra to install when the engine cannot run."""
    if name not in ENGINES or name == "local":
        raise ValueError(f"Expected `name` to be one of {list(ENGINES[1:])}. "
                         f"Received: name={name!r}")
    _RUNNERS[name] = (run_items, require)


def _engine(name):
    """The registered ``run_items`` of ``name`` (its plugin imported on first use); a
    missing extra fails here, before any work."""
    if name not in _RUNNERS:
        import importlib

        importlib.import_module(ENGINE_PLUGINS[name])
    run_items, require = _RUNNERS[name]
    if require is not None:
        require()
    return run_items


@dataclasses.dataclass
class DatasetSummary:
    """What a dataset job did.

    Attributes:
        out: the output directory.
        total: inputs named by the job.
        skipped: inputs that already had a map in ``out`` (a resumed job).
        explained: inputs explained by this run.
        errors: ``[(id, reason)]`` of the inputs that failed (also in ``errors.jsonl``).
        seconds: wall time of the run, start-up included.
        workers: ``{worker process id: peak resident memory in MB}``.
    """

    out: str
    total: int
    skipped: int
    explained: int
    errors: list
    seconds: float
    workers: dict

    def __str__(self):
        rate = self.explained / self.seconds if self.seconds else 0.0
        peak = max(self.workers.values(), default=0.0)
        return (f"{self.explained} explained, {self.skipped} already in {self.out}, "
                f"{len(self.errors)} errors (errors.jsonl), of {self.total} inputs in "
                f"{self.seconds:.1f} s ({rate:.1f} inputs/s; {len(self.workers)} worker "
                f"process{'' if len(self.workers) == 1 else 'es'}, peak {peak:.0f} MB "
                "resident)")


class Job:
    """Prepares ``out`` for a run of ``spec`` over ``ids`` and keeps its count.

    The settings of the spec (model fingerprint, method, decoys, aggregation, …) and the
    input shape are written to ``settings.json`` by the first run; a later run on the
    same ``out`` must have the same ones (else its maps would mix with others) and skips
    the ids already written.
    """

    def __init__(self, spec, out, ids, input_shape, progress=True):
        """``ids``: every input's id, or None when the workers skip what is done."""
        if not isinstance(out, (str, os.PathLike)) or not str(out):
            raise TypeError(f"Expected `out` to be a directory path or URI. Received: "
                            f"out={out!r}")
        if "://" not in str(out) and os.path.isfile(out):
            raise ValueError(f"Expected `out` to be a directory. Received: out={str(out)!r}, "
                             "a file")
        seen = set()
        for key in ids or ():
            if key in seen:
                raise ValueError(f"Expected every input id once. Received: id {key!r} twice")
            seen.add(key)
        self.started = time.perf_counter()
        self.input_shape = tuple(input_shape)
        self.output = Output(out)
        settings = dict(spec.settings(), input_shape=list(input_shape))
        previous = self.output.read_text(SETTINGS)
        if previous is not None and json.loads(previous) != settings:
            before = json.loads(previous)
            changed = sorted(k for k in set(before) | set(settings)
                             if before.get(k) != settings.get(k))
            raise ValueError(
                f"Expected the settings of the results already in `out` to resume them. "
                f"Received: out={str(out)!r}, written with other {', '.join(changed)} "
                f"({', '.join(f'{k}: {before.get(k)!r} then {settings.get(k)!r}' for k in changed)}"
                "); use a new `out`")
        self.output.prepare()
        self.output.write_text(SETTINGS, json.dumps(settings, indent=1, sort_keys=True))
        self.explained = 0
        self.workers = {}
        self._bar = None  # a keras Progbar, moved by advance() and finish_progress()
        if ids is None:  # a dataset the workers filter themselves (kd.ray.explain_dataset)
            self.todo, self.total, self.skipped = None, None, 0
        else:
            done = self.output.done_ids()
            self.todo = [key for key in ids if key not in done]
            self.total = len(ids)
            self.skipped = self.total - len(self.todo)
        if progress and (self.todo is None or self.todo):
            import keras

            self._bar = keras.utils.Progbar(
                None if self.todo is None else len(self.todo), unit_name="input")

    def update(self, rows):
        """Counts a batch's summary rows (``BatchExplainer.process``) and moves the bar."""
        rows = {key: list(value) for key, value in rows.items()}
        status = rows["status"]
        self.explained += status.count("explained")
        self.skipped += status.count("skipped")
        for worker, peak in zip(rows["worker"], rows["peak_rss_mb"]):
            self.workers[int(worker)] = max(float(peak), self.workers.get(int(worker), 0.0))
        if self._bar is not None and rows["id"]:
            self._bar.add(len(rows["id"]))

    def advance(self, count):
        """Moves the progress bar by ``count`` inputs (engines that poll their output)."""
        if self._bar is not None and count:
            self._bar.add(count)

    def finish_progress(self):
        """Fills the progress bar to the inputs to do (the last shards may not be polled)."""
        if self._bar is not None and self.todo is not None and (
                self._bar._seen_so_far < len(self.todo)):
            self._bar.update(len(self.todo), finalize=True)

    def finish(self):
        errors = self.output.finish_errors()
        total = (self.explained + self.skipped + len(errors) if self.total is None
                 else self.total)
        if self._bar is not None and self.todo is None:
            self._bar.update(self._bar._seen_so_far, finalize=True)
        return DatasetSummary(out=self.output.uri, total=total, skipped=self.skipped,
                              explained=self.explained, errors=errors,
                              seconds=time.perf_counter() - self.started,
                              workers=self.workers)


def check_engine_arguments(engine, workers, inputs_per_shard, gpus_per_worker):
    if engine not in ENGINES:
        raise ValueError(f"Expected `engine` to be one of {list(ENGINES)}. Received: "
                         f"engine={engine!r}")
    for name, value, low in (("workers", workers, 1), ("inputs_per_shard", inputs_per_shard, 1),
                             ("gpus_per_worker", gpus_per_worker, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
            raise ValueError(f"Expected `{name}` to be a number >= {low}. Received: "
                             f"{name}={value!r}")
    if engine == "local" and workers != 1:
        raise ValueError("Expected `workers=1` with engine='local' (one process; use "
                         f"engine='ray' or 'beam' for more). Received: workers={workers!r}")


def explain_files(inputs, spec, out, engine="local", workers=None, inputs_per_shard=64,
                  gpus_per_worker=0, progress=True, engine_options=None):
    """Explains every input file matching ``inputs`` and writes the maps to ``out``.

    The same call runs in this process (``engine="local"``: no engine at all), on Ray
    (a local instance, or the cluster ``ray.init`` / ``RAY_ADDRESS`` connects to) or on
    Apache Beam (the DirectRunner in multi-process mode, or any runner through
    ``engine_options``, a dict of Beam pipeline options). Each worker process loads the
    model once; each batch of ``inputs_per_shard`` inputs becomes one Parquet shard
    written whole or not at all. Running the same call again on the same ``out`` skips
    what is there; bad inputs (unreadable, wrong shape, NaN, outside the decoys' value
    range) are listed in ``out/errors.jsonl`` and do not stop the job.

    Args:
        inputs: glob pattern(s) or paths of image files (scaled to [0, 1]) and ``.npy``
            files (one input, or a batch ``(N, *input_shape)``: ids ``path#i``).
        spec: a ``kd.distributed.ExplainerSpec``.
        out: the output directory (local path, or a ``pyarrow`` file system URI).
        engine: "local", "ray" or "beam". Defaults to "local".
        workers: worker processes (Ray actors, Beam workers); None: 1 locally, 2
            otherwise. On CPUs each worker gets an equal share of this machine's cores.
        inputs_per_shard: inputs per batch sent to a worker, and per output shard.
            Defaults to 64.
        gpus_per_worker: Ray: GPUs per actor (1 places one actor per GPU). Defaults to 0.
        progress: show a progress bar (inputs done, rate, time left). Defaults to True.
        engine_options: Ray: ``ray.init`` arguments when no instance is connected;
            Beam: pipeline options. Defaults to None.

    Returns:
        a ``DatasetSummary``.
    """
    from keras_dance.distributed._inputs import list_inputs
    from keras_dance.distributed._worker import ExplainerSpec

    workers = (1 if engine == "local" else 2) if workers is None else workers
    check_engine_arguments(engine, workers, inputs_per_shard, gpus_per_worker)
    if not isinstance(spec, ExplainerSpec):
        raise TypeError(f"Expected `spec` to be a kd.distributed.ExplainerSpec. Received: "
                        f"spec={spec!r}")
    worker_spec = spec
    if engine != "local":
        run_items = _engine(engine)  # a missing extra fails before any work
        if spec.threads is None and not gpus_per_worker:  # the cores, shared out
            worker_spec = spec.with_threads(max(1, (os.cpu_count() or 1) // int(workers)))
    # The driver builds the explainer too: a bad layer name or model fails here, at once.
    explainer = spec.load()
    items = list_inputs(inputs, explainer.input_shape)
    job = Job(spec, out, [key for key, _, _ in items], explainer.input_shape, progress)
    todo = set(job.todo)
    items = [item for item in items if item[0] in todo]
    if engine == "local":
        for start in range(0, len(items), int(inputs_per_shard)):
            ids, paths, indices = zip(*items[start:start + int(inputs_per_shard)])
            job.update(explainer.process_items(ids, paths, indices, job.output))
    elif items:
        run_items(items, worker_spec, job, workers=int(workers),
                  inputs_per_shard=int(inputs_per_shard), gpus_per_worker=gpus_per_worker,
                  options=engine_options or {})
    return job.finish()

