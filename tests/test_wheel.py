"""The package as users install it: a wheel, with its models, away from the source tree.

``pip wheel .`` builds it; it is installed with ``--target`` into an empty directory (the
dependencies are this environment's: a fresh TensorFlow install would cost minutes), and a
subprocess whose working directory and ``sys.path`` hold no source checkout loads a
shipped model, explains and exports.
"""

import pytest
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SMOKE = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    import numpy as np
    import tensorflow as tf
    import keras_dance as kd
    assert kd.__file__.startswith(sys.argv[1]), kd.__file__
    assert not any("keras_dance" in p and p.startswith(sys.argv[2]) for p in sys.path)
    model = kd.datasets.load_digits_model()
    x = kd.datasets.load_digits()[2][:2]
    explainer = kd.Explainer(model, decoys=kd.DecoyConfig(layer="conv2", patch=8, steps=3))
    maps = explainer.explain(x)
    assert maps.shape == (2, 32, 32, 1) and np.all(np.isfinite(maps))
    path = explainer.export(sys.argv[3])
    served = tf.saved_model.load(str(path)).signatures["explain"](inputs=tf.constant(x))
    np.testing.assert_allclose(served["saliency"].numpy(), maps, rtol=1e-4, atol=1e-6)
    print("wheel ok", kd.datasets.SAVED_MODELS)
""")

pytestmark = pytest.mark.slow  # a whole tier of its own (make test; not make check)


def test_wheel_ships_its_models_and_works_outside_the_checkout(tmp_path):
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
                    str(wheels), str(ROOT)], check=True, capture_output=True, timeout=600)
    (wheel,) = wheels.glob("keras_dance-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet",
                    "--target", str(site), str(wheel)], check=True, capture_output=True,
                   timeout=600)
    shipped = site / "keras_dance" / "saved_models"
    for name in ("digits_cnn.keras", "configurations_resnet.keras", "text_cnn.keras",
                 "text_cnn.vocab.txt"):
        assert (shipped / name).is_file(), name
    result = subprocess.run(
        [sys.executable, "-c", SMOKE, str(site), str(ROOT), str(tmp_path / "serving" / "1")],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
        env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"wheel ok {site}" in result.stdout
