"""Data shipped with the library or generated deterministically by it (no downloads)."""

from pathlib import Path

import numpy as np

#: Where the trained example models live in a source checkout.
SAVED_MODELS = Path(__file__).resolve().parent.parent / "saved_models"
DIGITS_MODEL = "digits_cnn.keras"


def load_digits(size=32, test_fraction=0.2, seed=0):
    """scikit-learn's bundled handwritten digits as images in [0, 1].

    The 8×8 images (values 0–16) are scaled to [0, 1] and resized bilinearly to
    ``size × size``; the split is a seeded permutation (the shipped model was trained on
    the default split).

    Args:
        size: image side. Defaults to 32.
        test_fraction: held-out fraction. Defaults to 0.2.
        seed: permutation seed. Defaults to 0.

    Returns:
        ``(x_train, y_train, x_test, y_test)``: float32 ``(N, size, size, 1)`` images and
        int32 labels.
    """
    import tensorflow as tf
    from sklearn.datasets import load_digits as sklearn_digits

    if not 0 < test_fraction < 1:
        raise ValueError(
            f"Expected `test_fraction` in (0, 1). Received: test_fraction={test_fraction!r}"
        )
    digits = sklearn_digits()
    images = digits.images.astype(np.float32)[..., None] / 16.0
    images = tf.image.resize(images, (size, size), method="bilinear").numpy()
    images = np.clip(images, 0.0, 1.0).astype(np.float32)
    labels = digits.target.astype(np.int32)
    order = np.random.RandomState(seed).permutation(len(labels))
    cut = int(round(len(labels) * (1 - test_fraction)))
    train, test = order[:cut], order[cut:]
    return images[train], labels[train], images[test], labels[test]


def load_digits_model(path=None):
    """Loads the shipped digits CNN (``saved_models/digits_cnn.keras``) safely."""
    import keras

    path = Path(path) if path is not None else SAVED_MODELS / DIGITS_MODEL
    if not path.exists():
        raise FileNotFoundError(
            f"Expected the shipped model at {path} (run examples/train_digits.py). "
            f"Received: path={str(path)!r}"
        )
    return keras.models.load_model(path, safe_mode=True)
