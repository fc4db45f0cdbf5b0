"""Trains a mini-Xception (Arriaga et al. 2017's real-time emotion CNN, the
face_classification repository's `mini_XCEPTION`) on 64×64 digits and writes it as a
legacy Keras-2-era HDF5 file, as real users' pretrained models come.

The architecture is the original's: two 3×3 convolutions, then four modules of two
SeparableConv2D with BatchNorm, a 3×3 stride-2 max-pool and a residual add from a 1×1
stride-2 convolution (the layer whose eager filter gradient aborts TensorFlow 2.21 on
60×60×8 inputs: the first module's shortcut sees exactly that), then a 3×3 convolution
to one map per class, global average pooling and a softmax. L2 regularisation 0.01 as
in the original; 10 classes (the digits) instead of 7 emotions.

Writes saved_models/mini_xception.hdf5 (legacy HDF5, about 0.6 MB) and prints its
held-out accuracy; the parity suite loads it on every backend.

Run: .venv/bin/python examples/train_mini_xception.py   (about 2 minutes on 2 cores)
"""

import argparse
import time

import keras
from _setup import add_quick_flag, deterministic

import keras_dance as kd


def mini_xception(input_shape=(64, 64, 1), num_classes=10, l2=0.01):
    regularization = keras.regularizers.l2(l2)
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, use_bias=False, kernel_regularizer=regularization)(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.Conv2D(8, 3, use_bias=False, kernel_regularizer=regularization)(x)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.Activation("relu")(x)
    for filters in (16, 32, 64, 128):
        residual = keras.layers.Conv2D(filters, 1, strides=2, padding="same",
                                       use_bias=False)(x)
        residual = keras.layers.BatchNormalization(momentum=0.9)(residual)
        x = keras.layers.SeparableConv2D(filters, 3, padding="same", use_bias=False,
                                         depthwise_regularizer=regularization,
                                         pointwise_regularizer=regularization)(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.Activation("relu")(x)
        x = keras.layers.SeparableConv2D(filters, 3, padding="same", use_bias=False,
                                         depthwise_regularizer=regularization,
                                         pointwise_regularizer=regularization)(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
        x = keras.layers.add([x, residual])
    x = keras.layers.Conv2D(num_classes, 3, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Activation("softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="mini_xception")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", default=str(kd.datasets.SAVED_MODELS / "mini_xception.hdf5"))
    add_quick_flag(parser)
    args = parser.parse_args()
    deterministic(0)
    x_train, y_train, x_test, y_test = kd.datasets.load_digits(size=64)
    if args.quick:
        x_train, y_train, args.epochs = x_train[:256], y_train[:256], 1
    model = mini_xception()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=32, epochs=args.epochs, verbose=2,
              validation_data=(x_test, y_test))
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    model.save(args.out)  # the legacy HDF5 format (.hdf5/.h5): Keras warns, users have these
    print(f"held-out accuracy {accuracy:.3f} after {args.epochs} epochs "
          f"({time.perf_counter() - start:.0f} s); wrote {args.out}")


if __name__ == "__main__":
    main()
