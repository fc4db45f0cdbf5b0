"""Explain whole datasets: the engine-neutral core that the local loop, Ray Data
(``kd.ray``) and Apache Beam (``kd.beam``) run.

- ``ExplainerSpec``: a picklable description of the explainer (a ``.keras`` path plus
  ``kd.Explainer`` settings, or an exported SavedModel); ``spec.load()`` builds a
  ``BatchExplainer`` once per worker process.
- ``BatchExplainer``: numpy in, records out; bad inputs become errors, not exceptions.
- ``explain_files(inputs, spec, out, engine="local"|"ray"|"beam")``: the job the
  ``keras-dance explain-dataset`` command runs; resumable.
- ``read_maps(out)`` / ``read_table(out)``: the results, as ``{id: map}`` or a table.

Results are Parquet shards under ``out/maps/``, each written whole or not at all (see
``keras_dance.distributed._shards``).
"""

from keras_dance.distributed._inputs import InputError, list_inputs, read_batch, read_item
from keras_dance.distributed._job import (ENGINES, DatasetSummary, Job,
                                          check_engine_arguments, explain_files,
                                          register_engine)
from keras_dance.distributed._shards import ERRORS, MAPS, Output, read_maps, read_table
from keras_dance.distributed._worker import (BatchExplainer, ExplainerSpec,
                                             configure_devices, summary)

__all__ = ["BatchExplainer", "DatasetSummary", "ENGINES", "ExplainerSpec", "InputError",
           "Job", "Output", "check_engine_arguments", "configure_devices", "explain_files",
           "list_inputs", "read_batch", "read_item", "read_maps", "read_table", "register_engine"]
