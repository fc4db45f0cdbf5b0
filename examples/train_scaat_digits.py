"""Trains the digits CNN with SCAAT, same data, seed, optimiser and epochs as the shipped one.

Writes saved_models/digits_cnn_scaat.keras. Run: .venv/bin/python examples/train_scaat_digits.py
"""

import argparse
import time

import keras
from _setup import add_quick_flag, deterministic
from train_digits import build_model

import keras_dance as kd

SCAAT_SETTINGS = dict(epsilon=0.1, gamma=1.0, steps=3, step_size=0.5, beta=1.0)


def train(scaat, epochs, seed=0, count=None):
    """Trains one digits CNN (standard or SCAAT) on the first ``count`` training images
    (all when None); returns (model, seconds per epoch)."""
    deterministic(seed)
    x_train, y_train, _, _ = kd.datasets.load_digits()
    x_train, y_train = x_train[:count], y_train[:count]
    model = build_model()
    trainer = kd.training.SCAAT(model, **SCAAT_SETTINGS) if scaat else model
    trainer.compile(optimizer=keras.optimizers.Adam(2e-3),
                    loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    trainer.fit(x_train, y_train, batch_size=32, epochs=epochs, shuffle=True, verbose=0)
    return model, (time.perf_counter() - start) / epochs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", default=str(kd.datasets.SAVED_MODELS / "digits_cnn_scaat.keras"))
    add_quick_flag(parser)
    args = parser.parse_args()
    model, seconds = train(scaat=True, epochs=1 if args.quick else args.epochs,
                           count=256 if args.quick else None)
    _, _, x_test, y_test = kd.datasets.load_digits()
    accuracy = (model.predict(x_test, verbose=0).argmax(axis=1) == y_test).mean()
    path = args.out
    model.save(path)
    print(f"SCAAT digits CNN: held-out accuracy {accuracy:.4f}, {seconds:.1f} s/epoch -> {path}")


if __name__ == "__main__":
    main()
