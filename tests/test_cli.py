"""The command line end to end on the shipped model, in a subprocess."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import keras_dance as kd

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "saved_models" / "digits_cnn.keras"
IMAGES = sorted((ROOT / "examples" / "data").glob("digit_*.png"))


def cli(*args):
    return subprocess.run([sys.executable, "-m", "keras_dance.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_explain_writes_maps_and_overlays(tmp_path, digits_model):
    out = tmp_path / "out"
    result = cli("explain", MODEL, *IMAGES[:2], "--method=gradient", f"--out={out}")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    # Our lines only: TensorFlow's C++/absl start-up chatter stays out (--verbose keeps it).
    for chatter in ("I0000", "E0000", "absl::InitializeLog", "cuda", "port.cc"):
        assert chatter not in result.stderr, result.stderr
    maps = np.load(out / "maps.npy")
    inputs = np.load(out / "inputs.npy")
    assert maps.shape == (2, 32, 32, 1)
    assert len(list(out.glob("*_overlay.png"))) == 2
    expected = kd.Explainer(digits_model).explain(inputs)
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_explain_with_decoys(tmp_path, digits_model):
    out = tmp_path / "dance"
    result = cli("explain", MODEL, IMAGES[0], "--decoy_layer=conv2", "--patch=8",
                 f"--out={out}")
    assert result.returncode == 0, result.stderr
    assert "decoys: 32 per input" in result.stdout
    inputs = np.load(out / "inputs.npy")
    expected = kd.Explainer(digits_model, decoys=kd.DecoyConfig(layer="conv2", patch=8)).explain(
        inputs)
    np.testing.assert_allclose(np.load(out / "maps.npy"), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make_args, message", [
    (lambda tmp: ["explain", tmp / "missing.keras", IMAGES[0]], "model not found"),
    (lambda tmp: ["explain", MODEL, tmp / "missing.png"], "input file not found"),
    (lambda tmp: ["explain", MODEL, tmp / "corrupt.png"], "cannot read image"),
    (lambda tmp: ["explain", MODEL, tmp / "big.png"], "the model expects"),
    (lambda tmp: ["explain", MODEL, IMAGES[0], "--method=nope"], "Expected `method`"),
    (lambda tmp: ["explain", MODEL, IMAGES[0], "--decoy_layer=nope"], "Expected `layer`"),
])
def test_explain_errors_exit_nonzero_and_leave_nothing(tmp_path, capsys, make_args, message):
    # In process (the exit status of a real subprocess is checked in the export test).
    from PIL import Image

    (tmp_path / "corrupt.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "big.png")
    out = tmp_path / "out"
    status, captured = _run_in_process([*make_args(tmp_path), f"--out={out}"], capsys)
    assert status == 1
    assert message in captured.err
    assert captured.err.strip().splitlines()[-1].startswith("keras-dance: error:")
    assert not out.exists()
    assert not list(tmp_path.glob(".keras-dance-*"))


@pytest.mark.slow
def test_export_and_evaluate_commands(tmp_path, digits_model, capsys):
    out = tmp_path / "models" / "digits" / "1"
    result = cli("export", MODEL, f"--out={out}")
    assert result.returncode == 0, result.stderr
    assert (out / "saved_model.pb").exists() and "explain_target" in result.stdout
    # TensorFlow's SavedModel INFO lines (signature renaming, assets) stay out.
    assert result.stderr.strip() == "", result.stderr
    # The rest in this process (no interpreter start-ups; the commands are the same).
    status, captured = _run_in_process(["export", MODEL, f"--out={out}"], capsys)
    assert status == 1 and "--overwrite" in captured.err
    x_train, y_train, x_test, y_test = kd.datasets.load_digits()
    np.savez(tmp_path / "data.npz", x=x_test[:6], y=y_test[:6])
    status, captured = _run_in_process(["evaluate", MODEL, tmp_path / "data.npz", "--method=cgi"],
                                       capsys)
    assert status in (0, None), captured.err
    assert "deletion AUC" in captured.out and "cgi on 6 examples" in captured.out
    shapes, labels, masks = kd.datasets.make_shapes(4, seed=1)
    np.savez(tmp_path / "shapes.npz", x=shapes, y=labels, masks=masks)
    status, captured = _run_in_process(
        ["evaluate", ROOT / "saved_models" / "shapes_cnn.keras", tmp_path / "shapes.npz"], capsys)
    assert status in (0, None) and "pointing game" in captured.out
    np.savez(tmp_path / "bad.npz", z=np.zeros(3))
    status, captured = _run_in_process(["evaluate", MODEL, tmp_path / "bad.npz"], capsys)
    assert status == 1 and "needs an array named x" in captured.err


def test_per_command_help():
    result = subprocess.run([sys.executable, "-c", "from keras_dance.cli import run; run()",
                             "export", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "usage: keras-dance export" in result.stdout and "--overwrite" in result.stdout
    assert "--limit" not in result.stdout


def _run_in_process(argv, capsys):
    """The CLI's main() in this process (absl flags parsed afresh): no interpreter start-up."""
    from keras_dance import cli as cli_module

    flags = [a for a in argv if str(a).startswith("--")]
    positional = [str(a) for a in argv if not str(a).startswith("--")]
    cli_module.FLAGS.unparse_flags()
    cli_module.FLAGS(["keras-dance", *map(str, flags)])
    try:
        status = cli_module.main(["keras-dance", *positional])
    finally:
        cli_module.FLAGS.unparse_flags()
    return status, capsys.readouterr()


@pytest.mark.parametrize("case, message", [
    ("strings_npy", "holds <U1 values; expected numbers"),
    ("scalar_npy", "has shape (); expected one input"),
    ("out_is_a_file", "is a file; expected a directory"),
    ("out_unwritable", "cannot write to --out="),
    ("evaluate_npy", "is not an .npz archive"),
    ("evaluate_bad_masks", "Expected `masks` of shape"),
    ("corrupt_keras", "not a valid .keras file"),
])
def test_cli_errors_are_one_line_never_a_traceback(tmp_path, capsys, case, message):
    np.save(tmp_path / "strings.npy", np.array(["a", "b"]))
    np.save(tmp_path / "scalar.npy", np.float32(1.0))
    (tmp_path / "file").write_text("x")
    (tmp_path / "corrupt.keras").write_bytes(b"PK not really")
    x = kd.datasets.load_digits()[2][:2]
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "bad_masks.npz", x=x, masks=np.ones((2, 5, 5), bool))
    argv = {
        "strings_npy": ["explain", MODEL, tmp_path / "strings.npy"],
        "scalar_npy": ["explain", MODEL, tmp_path / "scalar.npy"],
        "out_is_a_file": ["explain", MODEL, IMAGES[0], f"--out={tmp_path / 'file'}"],
        "out_unwritable": ["explain", MODEL, IMAGES[0], f"--out={tmp_path / 'file' / 'a' / 'b'}"],
        "evaluate_npy": ["evaluate", MODEL, tmp_path / "x.npy"],
        "evaluate_bad_masks": ["evaluate", MODEL, tmp_path / "bad_masks.npz"],
        "corrupt_keras": ["explain", tmp_path / "corrupt.keras", IMAGES[0]],
    }[case]
    status, captured = _run_in_process(argv, capsys)
    assert status == 1
    assert captured.err.startswith("keras-dance: error:") and message in captured.err, captured.err
    assert "Traceback" not in captured.err
    assert (tmp_path / "file").read_text() == "x"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".keras-dance-")]


def test_cli_explains_sentences_and_exports_a_text_model(tmp_path, capsys):
    import keras_dance as kd

    model_path = kd.datasets.SAVED_MODELS / "text_cnn.keras"
    vocabulary = kd.datasets.SAVED_MODELS / "text_cnn.vocab.txt"
    (tmp_path / "reviews.txt").write_text("The film was not very good.\n\nA truly dull plot!\n")
    out = tmp_path / "run"
    status, captured = _run_in_process(["explain", model_path, tmp_path / "reviews.txt",
                                        f"--vocabulary={vocabulary}", f"--out={out}"], capsys)
    assert status == 0, captured.err
    assert sorted(p.name for p in out.iterdir()) == [
        "inputs.npy", "maps.npy", "reviews_0_words.html", "reviews_2_words.html", "targets.npy"]
    ids, maps = np.load(out / "inputs.npy"), np.load(out / "maps.npy")
    model, words = kd.datasets.load_text_model()
    np.testing.assert_allclose(maps, kd.Explainer(model, pad_id=0).explain(ids), rtol=1e-5,
                               atol=1e-6)
    assert [words[i] for i in ids[0][:6]] == ["the", "film", "was", "not", "very", "good"]
    assert np.load(out / "targets.npy").tolist() == [0, 0]
    assert ">not</span>" in (out / "reviews_0_words.html").read_text()
    status, captured = _run_in_process(["export", model_path, f"--vocabulary={vocabulary}",
                                        f"--out={tmp_path / 'served' / '1'}"], capsys)
    assert status == 0 and "explain_text" in captured.out, captured.err
    # --vocabulary on an image model: one line, nothing written.
    status, captured = _run_in_process(["explain", kd.datasets.SAVED_MODELS / "digits_cnn.keras",
                                        tmp_path / "reviews.txt", f"--vocabulary={vocabulary}",
                                        f"--out={tmp_path / 'none'}"], capsys)
    assert status == 1 and "--vocabulary is for token models" in captured.err
    assert not (tmp_path / "none").exists()


def test_backend_flag_restarts_the_command_on_that_backend(monkeypatch):
    from keras_dance import cli

    calls = []
    monkeypatch.setattr(cli.os, "execve", lambda *args: calls.append(args))
    cli._restart_on_backend(["keras-dance", "explain", "m.keras", "--backend=tensorflow"])
    assert calls == []  # already on TensorFlow: nothing to restart
    cli._restart_on_backend(["keras-dance", "explain", "m.keras", "--backend", "jax", "x.png"])
    (executable, argv, env), = calls
    assert argv[1:] == ["-m", "keras_dance.cli", "explain", "m.keras", "--backend", "jax",
                        "x.png"] and env["KERAS_BACKEND"] == "jax"
    cli._restart_on_backend(["keras-dance", "explain", "--backend=nope"])
    assert len(calls) == 1  # an unknown name is absl's to refuse
