"""Dataset scale: the engine-neutral core, the local engine, resume, bad inputs, the
command line and the missing-extra messages. Ray and Beam: test_engines.py."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import keras_dance as kd
from keras_dance.distributed import _shards

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "saved_models" / "digits_cnn.keras"
DANCE = dict(method="gradient", decoys=kd.DecoyConfig(layer="conv2", patch=16, steps=10))


def write_inputs(directory, count=40):
    """``count`` digits as files of every kind a job reads: a batch ``.npy`` (ids
    ``path#i``), single-input ``.npy`` files and PNG images. Returns ``{id: input}`` as a
    worker reads them (PNG values quantised to 1/255)."""
    x = kd.datasets.load_digits()[2][:count]
    directory.mkdir(parents=True, exist_ok=True)
    batch, singles = count // 2, count // 4
    np.save(directory / "batch.npy", x[:batch])
    inputs = {f"{directory}/batch.npy#{i}": x[i] for i in range(batch)}
    for i in range(batch, batch + singles):
        path = directory / f"one_{i:02d}.npy"
        np.save(path, x[i])
        inputs[str(path)] = x[i]
    for i in range(batch + singles, count):
        path = directory / f"image_{i:02d}.png"
        Image.fromarray(np.round(x[i, ..., 0] * 255).astype(np.uint8)).save(path)
        inputs[str(path)] = kd.distributed.read_item(str(path), -1, (32, 32, 1))
    return inputs


def write_bad_inputs(directory):
    """One of each input a job must record instead of stopping on: ``{id: reason part}``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "corrupt.png").write_bytes(b"\x89PNG not really")
    (directory / "truncated.npy").write_bytes(b"\x93NUMPY")
    np.save(directory / "wrong_shape.npy", np.zeros((28, 28), np.float32))
    nan = np.zeros((32, 32, 1), np.float32)
    nan[3, 4, 0] = np.nan
    np.save(directory / "nan.npy", nan)
    np.save(directory / "strings.npy", np.array(["a", "b"]))
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(directory / "small.png")
    return {"corrupt.png": "cannot read image", "truncated.npy": "cannot read",
            "wrong_shape.npy": "has shape (28, 28)", "nan.npy": "NaN",
            "strings.npy": "expected numbers", "small.png": "has shape (16, 16, 1)"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("inputs")
    return directory, write_inputs(directory)


def reference(inputs, **settings):
    """In-process ``explain`` of the same inputs: the maps every engine must give."""
    explainer = kd.Explainer(kd.datasets.load_digits_model(), **settings)
    ids = sorted(inputs)
    maps, details = explainer.explain(np.stack([inputs[i] for i in ids]),
                                      return_details=True)
    return {i: m for i, m in zip(ids, maps)}, {
        key: dict(zip(ids, value)) for key, value in details.items()}


def check_same_maps(out, expected, details=None):
    maps = kd.distributed.read_maps(out)
    assert sorted(maps) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(maps[key], value, rtol=1e-5, atol=1e-5, err_msg=key)
    table = kd.distributed.read_table(out)
    assert len(table) == len(set(table.column("id").to_pylist()))  # every id once
    if details is not None:
        rows = table.to_pydict()
        for row, key in enumerate(rows["id"]):
            assert rows["target"][row] == details["targets"][key]
            assert rows["predicted"][row] == details["targets"][key]  # targets=None
            for name in ("num_decoys", "feasible_fraction", "mean_perturbation"):
                if name in details:
                    np.testing.assert_allclose(rows[name][row], details[name][key],
                                               rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("settings", [dict(method="smoothgrad"), DANCE],
                         ids=["smoothgrad", "dance"])
def test_local_engine_gives_the_in_process_maps(tmp_path, inputs, settings):
    directory, values = inputs
    spec = kd.distributed.ExplainerSpec(MODEL, **settings)
    summary = kd.distributed.explain_files(f"{directory}/*", spec, tmp_path / "out",
                                           inputs_per_shard=7, progress=False)
    assert (summary.total, summary.explained, summary.skipped) == (40, 40, 0)
    assert summary.errors == []
    assert len(list((tmp_path / "out" / "maps").glob("part-*.parquet"))) == 6  # ceil(40/7)
    check_same_maps(tmp_path / "out", *reference(values, **settings))
    assert (tmp_path / "out" / "errors.jsonl").read_text() == ""


def test_an_exported_savedmodel_is_a_spec_too(tmp_path, inputs):
    directory, values = inputs
    explainer = kd.Explainer(kd.datasets.load_digits_model(), method="integrated_gradients")
    explainer.export(tmp_path / "model" / "1")
    spec = kd.distributed.ExplainerSpec(tmp_path / "model" / "1")
    kd.distributed.explain_files(f"{directory}/one_*.npy", spec, tmp_path / "out",
                                 progress=False)
    expected, _ = reference({k: v for k, v in values.items() if "/one_" in k},
                            method="integrated_gradients")
    check_same_maps(tmp_path / "out", expected)


def test_bad_inputs_are_recorded_and_the_rest_completes(tmp_path, inputs):
    directory, values = inputs
    reasons = write_bad_inputs(tmp_path / "bad")
    spec = kd.distributed.ExplainerSpec(MODEL, **DANCE)
    out_of_range = tmp_path / "bad" / "bright.npy"  # outside the decoys' value range
    np.save(out_of_range, np.full((32, 32, 1), 2.0, np.float32))
    reasons["bright.npy"] = "value_range"
    summary = kd.distributed.explain_files(
        [f"{directory}/one_*.npy", f"{tmp_path}/bad/*"], spec, tmp_path / "out",
        inputs_per_shard=4, progress=False)
    assert summary.explained == 10 and len(summary.errors) == len(reasons)
    lines = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").open()]
    assert sorted(Path(line["id"]).name for line in lines) == sorted(reasons)
    for line in lines:
        assert reasons[Path(line["id"]).name] in line["reason"], line
    assert sorted(kd.distributed.read_maps(tmp_path / "out")) == sorted(
        k for k in values if "/one_" in k)
    assert not (tmp_path / "out" / "_errors").exists()


class Interrupted(Exception):
    pass


def test_an_interrupted_job_resumes_without_recomputing(tmp_path, inputs, monkeypatch):
    directory, values = inputs
    spec = kd.distributed.ExplainerSpec(MODEL, method="gradient")
    explained = []
    original = kd.distributed.BatchExplainer.explain

    def counting(self, ids, rows, targets=None):
        if fail_after is not None and len(explained) >= fail_after:
            raise Interrupted("the worker dies")
        explained.extend(ids)
        return original(self, ids, rows, targets)

    monkeypatch.setattr(kd.distributed.BatchExplainer, "explain", counting)
    fail_after = 15  # the fourth batch of 5 fails
    with pytest.raises(Interrupted):
        kd.distributed.explain_files(f"{directory}/*", spec, tmp_path / "out",
                                     inputs_per_shard=5, progress=False)
    shards = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "maps").iterdir()}
    first = set(kd.distributed.read_maps(tmp_path / "out"))
    assert len(shards) == 3 and len(first) == 15 and set(explained) == first
    explained.clear()
    fail_after = None
    summary = kd.distributed.explain_files(f"{directory}/*", spec, tmp_path / "out",
                                           inputs_per_shard=5, progress=False)
    assert (summary.skipped, summary.explained) == (15, 25)
    assert len(explained) == 25 and not set(explained) & first  # nothing computed twice
    for path, mtime in shards.items():  # the first run's shards are untouched
        assert path.stat().st_mtime_ns == mtime
    check_same_maps(tmp_path / "out", reference(values, method="gradient")[0])


def test_resuming_with_other_settings_is_refused(tmp_path, inputs):
    directory, _ = inputs
    first = kd.distributed.ExplainerSpec(MODEL, method="gradient")
    kd.distributed.explain_files(f"{directory}/one_*.npy", first, tmp_path / "out",
                                 progress=False)
    other = kd.distributed.ExplainerSpec(MODEL, method="smoothgrad")
    with pytest.raises(ValueError, match="other method"):
        kd.distributed.explain_files(f"{directory}/one_*.npy", other, tmp_path / "out",
                                     progress=False)
    # The memory knob changes how maps are computed, not what they are.
    knob = kd.distributed.ExplainerSpec(MODEL, method="gradient", batch_size=7)
    summary = kd.distributed.explain_files(f"{directory}/*", knob, tmp_path / "out",
                                           progress=False)
    assert (summary.skipped, summary.explained) == (10, 30)


def test_a_shard_appears_whole_or_not_at_all(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    output = _shards.Output(tmp_path / "out")
    output.prepare()
    records = {"id": ["a", "b"], "target": [1, 2], "predicted": [1, 2],
               "map": np.ones((2, 3, 3), np.float32)}
    real = pq.write_table

    def dies_halfway(table, where, **kwargs):
        where.write(b"PAR1 half a shard")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", dies_halfway)
    with pytest.raises(OSError, match="disk full"):
        output.write_maps(records)
    assert list((tmp_path / "out" / "maps").iterdir()) == []  # no shard, no temporary
    with pytest.raises(ValueError, match="none"):
        kd.distributed.read_maps(tmp_path / "out")
    monkeypatch.setattr(pq, "write_table", real)
    first = output.write_maps(records)
    again = output.write_maps(records)  # a retried batch rewrites the same shard
    assert first == again and len(list((tmp_path / "out" / "maps").iterdir())) == 1
    output.write_maps(dict(records, id=["b", "c"]))
    with pytest.raises(ValueError, match="id 'b' twice"):
        kd.distributed.read_maps(tmp_path / "out")


def test_spec_validation(tmp_path):
    with pytest.raises(ValueError, match="Expected `model` to exist"):
        kd.distributed.ExplainerSpec(tmp_path / "missing.keras")
    with pytest.raises(TypeError, match="unknown 'methd'"):
        kd.distributed.ExplainerSpec(MODEL, methd="gradient")
    with pytest.raises(TypeError, match="pickle"):
        kd.distributed.ExplainerSpec(MODEL, preprocess=lambda x: x)
    (tmp_path / "dir").mkdir()
    with pytest.raises(ValueError, match="saved_model.pb"):
        kd.distributed.ExplainerSpec(tmp_path / "dir")
    kd.Explainer(kd.datasets.load_digits_model()).export(tmp_path / "sm")
    with pytest.raises(ValueError, match="no explainer settings"):
        kd.distributed.ExplainerSpec(tmp_path / "sm", method="smoothgrad")
    spec = kd.distributed.ExplainerSpec(MODEL)
    with pytest.raises(ValueError, match="engine"):
        kd.distributed.explain_files("x", spec, tmp_path / "o", engine="spark")
    with pytest.raises(ValueError, match="workers=1"):
        kd.distributed.explain_files("x", spec, tmp_path / "o", workers=2)
    with pytest.raises(ValueError, match="Expected input files"):
        kd.distributed.explain_files(f"{tmp_path}/nothing*", spec, tmp_path / "o")
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="a file"):
        kd.distributed.explain_files(str(MODEL.parent.parent / "examples/data/*.png"), spec,
                                     tmp_path / "file")
    # Loaded once per process: the workers of one process share the model.
    assert spec.load() is kd.distributed.ExplainerSpec(MODEL).load()


def test_without_the_extras_import_works_and_names_the_extra():
    code = (
        "import sys\n"
        "sys.modules['ray'] = None\n"
        "sys.modules['apache_beam'] = None\n"
        "import keras_dance as kd\n"
        "for name, call in (('ray', lambda: kd.ray.explain_dataset(None, None, 'o')),\n"
        "                   ('beam', lambda: kd.beam.ExplainModelHandler)):\n"
        "    try:\n"
        "        call()\n"
        "    except ImportError as error:\n"
        "        print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "pip install 'keras-dance[ray]'" in result.stdout
    assert "pip install 'keras-dance[beam]'" in result.stdout


def _run_in_process(argv, capsys):
    from test_cli import _run_in_process as run

    return run(argv, capsys)


@pytest.mark.slow
def test_cli_job_killed_then_resumed(tmp_path, inputs, capsys):
    directory, values = inputs
    out = tmp_path / "out"
    command = [sys.executable, "-m", "keras_dance.cli", "explain-dataset", str(MODEL),
               f"{directory}/*", f"--out={out}", "--inputs_per_shard=2",
               "--method=smoothgrad"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               cwd=ROOT)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if len(list((out / "maps").glob("part-*.parquet"))) >= 3:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)  # no clean-up of any kind
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read()
    written = set(kd.distributed.read_maps(out))
    assert 0 < len(written) < 40
    status, output = _run_in_process(
        ["explain-dataset", MODEL, f"{directory}/*", f"--out={out}",
         "--inputs_per_shard=2", "--method=smoothgrad"], capsys)
    assert status == 0, output.err
    assert f"{40 - len(written)} explained, {len(written)} already in" in output.out
    check_same_maps(out, reference(values, method="smoothgrad")[0])
    assert not [p for p in (out / "maps").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("argv, message", [
    (["explain-dataset", MODEL], "needs MODEL and at least one INPUT_GLOB"),
    (["explain-dataset", MODEL, "x.npy"], "needs --out"),
    (["explain-dataset", "missing.keras", "x.npy", "--out=o"], "model not found"),
    (["explain-dataset", MODEL, "nothing/*.png", "--out=OUT"], "Expected input files"),
    (["explain-dataset", MODEL, "x", "--out=OUT", "--decoy_layer=nope"], "nope"),
    (["explain-dataset", MODEL, "x", "--out=OUT", "--workers=3"], "workers=1"),
])
def test_cli_explain_dataset_errors_are_one_line(tmp_path, capsys, argv, message):
    argv = [str(a).replace("OUT", str(tmp_path / "o")) for a in argv]
    status, output = _run_in_process(argv, capsys)
    assert status == 1
    assert message in output.err and "Traceback" not in output.err
    assert not (tmp_path / "o" / "maps").exists() or not list((tmp_path / "o" / "maps").iterdir())


@pytest.mark.slow
def test_a_worker_takes_its_share_of_the_cores():
    code = (
        "import tensorflow as tf, keras_dance as kd\n"
        f"spec = kd.distributed.ExplainerSpec({str(MODEL)!r}).with_threads(1)\n"
        "spec.load()\n"
        "print(tf.config.threading.get_intra_op_parallelism_threads())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "1"


def test_a_worker_on_another_backend_than_the_jobs_refuses():
    spec = kd.distributed.ExplainerSpec(MODEL)
    assert spec.backend == "tensorflow"
    spec.backend = "jax"  # as if made by a JAX driver
    with pytest.raises(RuntimeError, match="Expected the worker on the job's Keras backend "
                                           "'jax'.*KERAS_BACKEND=jax"):
        kd.distributed.BatchExplainer(spec)
