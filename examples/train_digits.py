"""Trains the shipped digits CNN deterministically and saves saved_models/digits_cnn.keras.

Run: .venv/bin/python examples/train_digits.py
"""

import argparse
from pathlib import Path

import keras
import numpy as np
from _setup import add_quick_flag, deterministic

import keras_dance as kd


def build_model():
    return keras.Sequential(
        [
            keras.Input((32, 32, 1), name="image"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.MaxPooling2D(2, name="pool1"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(2, name="pool2"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv3"),
            keras.layers.MaxPooling2D(2, name="pool3"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(64, activation="relu", name="fc"),
            keras.layers.Dense(10, activation="softmax", name="predictions"),
        ],
        name="digits_cnn",
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", default=str(kd.datasets.SAVED_MODELS / kd.datasets.DIGITS_MODEL))
    parser.add_argument("--data_dir", default=str(Path(__file__).resolve().parent / "data"),
                        help="where the demo's sample images go")
    add_quick_flag(parser)
    args = parser.parse_args()

    deterministic(0)
    x_train, y_train, x_test, y_test = kd.datasets.load_digits()
    if args.quick:
        x_train, y_train, args.epochs = x_train[:256], y_train[:256], 1
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=32, epochs=args.epochs, shuffle=True, verbose=2)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"held-out accuracy: {accuracy:.4f} on {len(y_test)} images")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)

    # A handful of held-out samples for the demo, one per class where possible.
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    picks = [int(np.flatnonzero(y_test == c)[0]) for c in range(0, 10, 2)]
    np.save(data_dir / "digits_samples.npy", x_test[picks])
    np.save(data_dir / "digits_labels.npy", y_test[picks])
    from PIL import Image

    for i, index in enumerate(picks):
        pixels = (x_test[index, ..., 0] * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(data_dir / f"digit_{i}_label{y_test[index]}.png")
    print(f"saved {args.out} and {len(picks)} samples in {data_dir}")


if __name__ == "__main__":
    main()
