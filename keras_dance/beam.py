"""Apache Beam: ``RunInference`` with a keras-dance model handler, and transforms that
read inputs and write maps (``pip install 'keras-dance[beam]'``).

Beam's TensorFlow model handler cannot load a Keras 3 export and returns predictions,
not maps; ``ExplainModelHandler`` loads a ``kd.distributed.ExplainerSpec`` once per
worker process (or once per machine with ``large_model=True``) and returns one record
per input. It runs on the DirectRunner (``direct_running_mode="multi_processing"``) and
on Dataflow, Flink or Spark by pipeline options.

Example:
    >>> import apache_beam as beam
    >>> from apache_beam.ml.inference.base import RunInference
    >>> spec = kd.distributed.ExplainerSpec("model.keras", method="gradient")
    >>> with beam.Pipeline() as pipeline:
    ...     inputs = pipeline | kd.beam.ReadInputs("images/*.png", spec)
    ...     results = inputs.inputs | RunInference(kd.beam.ExplainModelHandler(spec))
    ...     (results, inputs.errors) | kd.beam.WriteMaps("out/maps")
"""

import os
import threading

import numpy as np

from keras_dance.distributed import MAPS, Output, register_engine

EXTRA = "pip install 'keras-dance[beam]'"
NAMESPACE = "keras_dance"

try:
    import apache_beam as beam
    from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference
except ImportError:  # the names below need Beam; importing keras_dance does not
    beam = None


def require():
    """Imports Beam, or raises an ImportError that names the extra to install."""
    if beam is None:
        raise ImportError(f"kd.beam needs Apache Beam: {EXTRA}")
    return beam


if beam is None:
    def __getattr__(name):
        if name in ("ExplainModelHandler", "ReadInputs", "WriteMaps"):
            require()
        raise AttributeError(f"module 'keras_dance.beam' has no attribute {name!r}")
else:
    class ExplainModelHandler(ModelHandler):
        """A ``RunInference`` model handler: elements ``(id, input)``, predictions
        ``PredictionResult(example=id, inference=record)``, where ``record`` holds
        ``target``, ``predicted``, ``map`` (and the decoy statistics) or, for an input
        that cannot be explained (wrong shape, NaN, …), ``error``: the reason.

        Args:
            spec: a ``kd.distributed.ExplainerSpec``.
            min_batch_size, max_batch_size: Beam's batching of elements per call.
            large_model: one model per machine, shared by its worker processes
                (Beam's ``multi_process_shared``), instead of one per process.
        """

        def __init__(self, spec, *, min_batch_size=1, max_batch_size=64, large_model=False):
            from keras_dance.distributed import ExplainerSpec

            if not isinstance(spec, ExplainerSpec):
                raise TypeError("Expected `spec` to be a kd.distributed.ExplainerSpec. "
                                f"Received: spec={spec!r}")
            super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size,
                             large_model=large_model)
            self.spec = spec

        def load_model(self):
            return self.spec.load()

        def run_inference(self, batch, model, inference_args=None):
            ids = [str(key) for key, _ in batch]
            records, errors = model.explain(ids, [value for _, value in batch])
            columns = [name for name in records if name != "id"]
            for row, key in enumerate(records["id"]):
                yield PredictionResult(key, {name: records[name][row] for name in columns})
            for key, reason in errors:
                yield PredictionResult(key, {"error": reason})

        def get_num_bytes(self, batch):
            return sum(np.asarray(value).nbytes for _, value in batch)

        def get_metrics_namespace(self):
            return NAMESPACE

    class _Read(beam.DoFn):
        def __init__(self, input_shape):
            self.input_shape = tuple(input_shape)

        def process(self, item):
            from keras_dance.distributed import InputError, read_item

            key, path, index = item
            try:
                yield key, read_item(path, index, self.input_shape)
            except InputError as error:
                yield beam.pvalue.TaggedOutput("errors", (key, str(error)))

    class ReadInputs(beam.PTransform):
        """Input files as ``(id, array)`` elements (``.inputs``) and ``(id, reason)``
        for unreadable ones (``.errors``); reading happens in the workers.

        Args:
            inputs: glob pattern(s), or ``kd.distributed.list_inputs`` items.
            input_shape: the model's input shape (``spec.load().input_shape``).
            out: skip the ids already written there (resume). Defaults to None.
        """

        def __init__(self, inputs, input_shape, out=None):
            super().__init__()
            from keras_dance.distributed import list_inputs

            items = (list(inputs) if inputs and isinstance(inputs, list)
                     and isinstance(inputs[0], tuple) else list_inputs(inputs, input_shape))
            done = Output(out).done_ids() if out is not None else set()
            self.items = [item for item in items if item[0] not in done]
            self.input_shape = tuple(input_shape)

        def expand(self, pipeline):
            return (pipeline
                    | "Items" >> beam.Create(self.items)
                    | "Spread" >> beam.Reshuffle()
                    | "Read" >> beam.ParDo(_Read(self.input_shape)).with_outputs(
                        "errors", main="inputs"))

    class _Write(beam.DoFn):
        def __init__(self, out):
            self.out = str(out)

        def setup(self):
            self.output = Output(self.out)
            self.output.create()
            self.explained = beam.metrics.Metrics.counter(NAMESPACE, "explained")
            self.failed = beam.metrics.Metrics.counter(NAMESPACE, "errors")
            self.peak = beam.metrics.Metrics.distribution(
                NAMESPACE, f"peak_rss_mb_of_worker_{os.getpid()}")

        def process(self, batch):
            from keras_dance.distributed import summary

            records, errors = {}, []
            for key, value in batch:
                if "error" in value:
                    errors.append((key, value["error"]))
                    continue
                records.setdefault("id", []).append(key)
                for name, item in value.items():
                    records.setdefault(name, []).append(item)
            if records:
                records["map"] = np.stack(records["map"])
                self.output.write_maps(records)
            self.output.write_errors(errors)
            rows = summary(records.get("id", []), errors)
            self.explained.inc(len(records.get("id", [])))
            self.failed.inc(len(errors))
            self.peak.update(int(rows["peak_rss_mb"][0]) if rows["id"] else 0)
            yield from zip(rows["id"], rows["status"])

    class WriteMaps(beam.PTransform):
        """Writes ``RunInference(ExplainModelHandler)`` results (and ``(id, reason)``
        errors) to ``out`` as Parquet shards of up to ``inputs_per_shard`` records, each
        written whole or not at all; outputs ``(id, status)``. Call
        ``kd.distributed.Output(out).finish_errors()`` after the pipeline to gather the
        errors into ``errors.jsonl`` (``explain_files`` does)."""

        def __init__(self, out, inputs_per_shard=64):
            super().__init__()
            self.out = str(out)
            self.inputs_per_shard = int(inputs_per_shard)

        def expand(self, results):
            if not isinstance(results, tuple):
                return self._write(results, "")
            # Each input written in its own branch, fused with the step that makes it:
            # flattening first would make Beam's local runner hold every result back
            # until the whole stage is done, and a killed job would lose them all.
            written = [self._write(part, f"{i}") for i, part in enumerate(results)]
            return written | "Statuses" >> beam.Flatten()

        def _write(self, results, suffix):
            return (results
                    | f"Record{suffix}" >> beam.Map(_as_record)
                    | f"Batch{suffix}" >> beam.BatchElements(
                        min_batch_size=1, max_batch_size=self.inputs_per_shard)
                    | f"Write{suffix}" >> beam.ParDo(_Write(self.out)))


def _as_record(element):
    if isinstance(element, tuple) and len(element) == 2 and isinstance(element[1], str):
        return element[0], {"error": element[1]}  # an (id, reason) from ReadInputs
    return str(element.example), dict(element.inference)


def _poll(job, stop):
    """The progress bar of a Beam run: the shards appearing under ``out``."""
    from keras_dance.distributed import ERRORS

    seen = 0
    while not stop.wait(1.0):
        written = sum(int(path.rsplit("-", 1)[-1].split(".")[0])
                      for directory in (MAPS, ERRORS)
                      for path in job.output.shard_paths(directory)
                      if path not in job.existing)
        if written > seen:
            job.advance(written - seen)
            seen = written


def run_items(items, spec, job, workers, inputs_per_shard, gpus_per_worker, options):
    """``kd.distributed.explain_files`` on Beam: DirectRunner with ``workers``
    processes unless ``options`` choose another runner."""
    from apache_beam.options.pipeline_options import PipelineOptions

    settings = {"runner": "DirectRunner", "direct_num_workers": workers,
                "direct_running_mode": "multi_processing",
                "default_sdk_harness_log_level": "WARNING", **options}
    input_shape = job.input_shape  # the driver's explainer read it (no second load here)
    handler = ExplainModelHandler(spec, max_batch_size=inputs_per_shard)
    job.existing = set(job.output.shard_paths(MAPS))
    stop = threading.Event()
    monitor = threading.Thread(target=_poll, args=(job, stop), daemon=True)
    monitor.start()
    try:
        pipeline = beam.Pipeline(options=PipelineOptions(flags=[], **settings))
        read = pipeline | "Read" >> ReadInputs(items, input_shape)
        explained = read.inputs | "Explain" >> RunInference(handler)
        _ = (explained, read.errors) | "Write" >> WriteMaps(job.output.uri, inputs_per_shard)
        result = pipeline.run()
        result.wait_until_finish()
    finally:
        stop.set()
        monitor.join()
    _count(result, job)


def _count(result, job):
    from apache_beam.metrics.metric import MetricsFilter

    metrics = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    for counter in metrics["counters"]:
        if counter.key.metric.name == "explained":
            job.explained += counter.committed or counter.attempted or 0
    for distribution in metrics["distributions"]:
        name = distribution.key.metric.name
        if name.startswith("peak_rss_mb_of_worker_"):
            value = distribution.committed or distribution.attempted
            job.workers[int(name.rsplit("_", 1)[-1])] = float(value.max)
    job.finish_progress()  # the errors' shards, unpolled


register_engine("beam", run_items, require)
