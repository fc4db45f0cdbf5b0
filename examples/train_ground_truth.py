"""Trains the small models of the ground-truth tasks, deterministically.

Writes saved_models/shapes_cnn.keras, motifs_cnn.keras and cancer_mlp.keras (or into
``--out_dir``) and prints their held-out accuracy.
Run: .venv/bin/python examples/train_ground_truth.py
"""

import argparse
from pathlib import Path

import keras
from _setup import add_quick_flag, deterministic

import keras_dance as kd


def shapes_model():
    return keras.Sequential([
        keras.Input((32, 32, 1), name="image"),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
        keras.layers.MaxPooling2D(2, name="pool1"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
        keras.layers.MaxPooling2D(2, name="pool2"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv3"),
        keras.layers.GlobalMaxPooling2D(name="gmp"),
        keras.layers.Dense(len(kd.datasets.SHAPE_CLASSES), activation="softmax", name="predictions"),
    ], name="shapes_cnn")


def motifs_model():
    return keras.Sequential([
        keras.Input((100, 4), name="sequence"),
        keras.layers.Conv1D(24, 6, padding="same", activation="relu", name="conv1"),
        keras.layers.Conv1D(16, 3, padding="same", activation="relu", name="conv2"),
        keras.layers.GlobalMaxPooling1D(name="gmp"),
        keras.layers.Dense(16, activation="relu", name="fc"),
        keras.layers.Dense(2, activation="softmax", name="predictions"),
    ], name="motifs_cnn")


def cancer_model():
    return keras.Sequential([
        keras.Input((30,), name="features"),
        keras.layers.Dense(32, activation="relu", name="hidden1"),
        keras.layers.Dense(16, activation="relu", name="hidden2"),
        keras.layers.Dense(2, activation="softmax", name="predictions"),
    ], name="cancer_mlp")


def train(name, model, x, y, x_test, y_test, epochs, out_dir, quick, batch_size=32, rate=2e-3):
    keras.utils.set_random_seed(0)
    if quick:
        x, y, epochs = x[:200], y[:200], 1
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    path = Path(out_dir) / f"{name}.keras"
    model.save(path)
    print(f"{name}: held-out accuracy {accuracy:.4f} on {len(y_test)} examples -> {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", default=str(kd.datasets.SAVED_MODELS))
    add_quick_flag(parser)
    args = parser.parse_args()
    where = {"out_dir": args.out_dir, "quick": args.quick}
    deterministic(0)
    x, y, _ = kd.datasets.make_shapes(3000, seed=1)
    x_test, y_test, _ = kd.datasets.make_shapes(500, seed=2)
    train("shapes_cnn", shapes_model(), x, y, x_test, y_test, epochs=12, **where)
    keras.utils.set_random_seed(0)
    x, y, _ = kd.datasets.make_motifs(4000, seed=1)
    x_test, y_test, _ = kd.datasets.make_motifs(600, seed=2)
    train("motifs_cnn", motifs_model(), x, y, x_test, y_test, epochs=15, **where)
    keras.utils.set_random_seed(0)
    x, y, x_test, y_test, _ = kd.datasets.load_cancer()
    train("cancer_mlp", cancer_model(), x, y, x_test, y_test, epochs=80, batch_size=16, **where)


if __name__ == "__main__":
    main()
