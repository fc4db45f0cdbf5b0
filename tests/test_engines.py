"""Ray Data and Apache Beam run the same job as the local engine: the same ids and maps
as in-process ``explain``, a killed Ray worker survived, Beam resuming another engine's
partial output. The inputs and checks are test_distributed.py's."""

import glob
import os
import signal
import threading
import time

import numpy as np
import pytest

import keras_dance as kd
from test_distributed import (DANCE, MODEL, check_same_maps, reference, write_bad_inputs,
                              write_inputs)

ray = pytest.importorskip("ray")  # make test installs the extras; a bare install skips
pytest.importorskip("apache_beam")

# One pytest-xdist worker runs this module (make test uses --dist loadgroup): one local
# Ray instance for all its tests, instead of one per worker fighting for the 2 cores.
pytestmark = [pytest.mark.xdist_group("engines"),
              pytest.mark.slow]  # a tier of its own (make test; not make check)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("inputs")
    return directory, write_inputs(directory)


@pytest.fixture(scope="module")
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="warning")
    yield
    ray.shutdown()


def test_ray_dataset_with_ids_inputs_and_targets(tmp_path, inputs, ray_instance):
    directory, values = inputs
    ids = sorted(values)
    targets = np.arange(len(ids)) % 10
    rows = [{"key": key, "pixels": values[key].reshape(-1), "label": int(label)}
            for key, label in zip(ids, targets)]  # flattened, as a Parquet list column
    dataset = ray.data.from_items(rows, override_num_blocks=4)
    spec = kd.distributed.ExplainerSpec(MODEL, method="gradient_x_input")
    with pytest.raises(ValueError, match="Expected `input_column`"):
        kd.ray.explain_dataset(dataset, spec, tmp_path / "out", id_column="key")
    summary = kd.ray.explain_dataset(dataset, spec, tmp_path / "out", id_column="key",
                                     input_column="pixels", target_column="label",
                                     concurrency=1, inputs_per_shard=8, progress=False)
    assert summary.explained == 40
    explainer = kd.Explainer(kd.datasets.load_digits_model(), method="gradient_x_input")
    expected = explainer.explain(np.stack([values[k] for k in ids]), targets=targets)
    check_same_maps(tmp_path / "out", dict(zip(ids, expected)))
    table = kd.distributed.read_table(tmp_path / "out").to_pydict()
    assert dict(zip(table["id"], table["target"])) == dict(zip(ids, targets.tolist()))
    again = kd.ray.explain_dataset(dataset, spec, tmp_path / "out", id_column="key",
                                   input_column="pixels", target_column="label",
                                   concurrency=1, progress=False)
    assert (again.explained, again.skipped) == (0, 40)


def _actor_pids():
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if b"ExplainActor" in handle.read():
                    pids.append(int(pid))
        except OSError:
            continue
    return pids


def test_ray_files_survive_a_killed_worker_with_the_in_process_maps(tmp_path, inputs,
                                                                    ray_instance):
    """Two actors explain the files (DANCE, bad inputs among them); one actor process is
    SIGKILLed once the first shard is written. Ray restarts it and retries its batch:
    every input once, the in-process maps, the bad inputs in errors.jsonl."""
    directory, values = inputs
    write_bad_inputs(tmp_path / "bad")
    out = tmp_path / "out"
    killed = []

    def kill_one_actor_mid_job():
        deadline = time.time() + 240
        while time.time() < deadline and not glob.glob(f"{out}/maps/part-*"):
            time.sleep(0.02)
        pids = _actor_pids()
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    killer = threading.Thread(target=kill_one_actor_mid_job)
    killer.start()
    spec = kd.distributed.ExplainerSpec(MODEL, **DANCE)
    summary = kd.distributed.explain_files([f"{directory}/*", f"{tmp_path}/bad/*"], spec,
                                           out, engine="ray", workers=2, inputs_per_shard=3,
                                           progress=False)
    killer.join()
    assert killed, "no actor process was found to kill"
    assert (summary.explained, len(summary.errors)) == (40, 6)  # the lost batch retried
    assert len(summary.workers) >= 2  # two actor processes (and the restarted one)
    check_same_maps(out, *reference(values, **DANCE))  # every id once, the same maps


def test_beam_resumes_a_partial_output_with_the_in_process_maps(tmp_path, inputs):
    directory, values = inputs
    write_bad_inputs(tmp_path / "bad")
    spec = kd.distributed.ExplainerSpec(MODEL, **DANCE)
    out = tmp_path / "out"
    # A first run (another engine) wrote a third of the inputs.
    kd.distributed.explain_files(f"{directory}/one_*.npy", spec, out, progress=False)
    before = {p: p.stat().st_mtime_ns for p in (out / "maps").iterdir()}
    summary = kd.distributed.explain_files([f"{directory}/*", f"{tmp_path}/bad/*"], spec,
                                           out, engine="beam", workers=2,
                                           inputs_per_shard=6, progress=False)
    assert (summary.skipped, summary.explained, len(summary.errors)) == (10, 30, 6)
    assert len(summary.workers) == 2  # Beam's DirectRunner ran two worker processes
    for path, mtime in before.items():
        assert path.stat().st_mtime_ns == mtime
    check_same_maps(out, *reference(values, **DANCE))


def test_beam_model_handler_in_a_users_pipeline(tmp_path, inputs):
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference

    directory, values = inputs
    spec = kd.distributed.ExplainerSpec(MODEL, method="gradient")
    handler = kd.beam.ExplainModelHandler(spec, max_batch_size=8)
    bad = np.full((32, 32, 1), np.nan, np.float32)
    elements = [(key, values[key]) for key in sorted(values)] + [("nan", bad)]
    with beam.Pipeline() as pipeline:
        results = pipeline | beam.Create(elements) | RunInference(handler)
        _ = results | kd.beam.WriteMaps(tmp_path / "out", inputs_per_shard=8)
    errors = kd.distributed.Output(tmp_path / "out").finish_errors()
    assert errors == [("nan", errors[0][1])] and "NaN" in errors[0][1]
    check_same_maps(tmp_path / "out", reference(values, method="gradient")[0])
    with pytest.raises(TypeError, match="ExplainerSpec"):
        kd.beam.ExplainModelHandler("model.keras")
