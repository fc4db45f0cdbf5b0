import subprocess
import pytest
import sys

import numpy as np

import keras_dance as kd


@pytest.mark.slow
def test_importing_keras_dance_adds_no_matplotlib_modules():
    # Keras itself imports matplotlib when it is installed; we add nothing until kd.viz.
    code = ("import sys, keras\n"
            "before = {m for m in sys.modules if m.startswith('matplotlib')}\n"
            "import keras_dance\n"
            "print(sorted({m for m in sys.modules if m.startswith('matplotlib')} - before))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_overlay_and_method_grid_write_pngs(tmp_path, digits_model, digits_samples):
    from PIL import Image

    x, _ = digits_samples
    maps = {name: kd.Explainer(digits_model, name).explain(x[:2]) for name in ("gradient", "cgi")}
    kd.viz.compare_methods(tmp_path / "grid.png", x[:2], maps)
    kd.viz.save_overlay(tmp_path / "one.png", x[0], maps["gradient"][0], title="gradient")
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.shape[0] > 100 and grid.shape[1] > grid.shape[0]  # 2 rows, 3 columns
    assert np.asarray(Image.open(tmp_path / "one.png")).std() > 0
