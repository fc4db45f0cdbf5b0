"""Trains the Kim-style text CNN of the synthetic sentiment task, deterministically.

``kd.datasets.make_sentiment``: sentences of 16 tokens whose label follows from one
sentiment word and its negation scope ("not very good" is negative). The model (Kim,
2014, as in the DANCE paper's SST setup): a 32-dimensional embedding, parallel 1-D
convolutions of widths 3, 4 and 5, global max pooling, a dense softmax layer. Writes
saved_models/text_cnn.keras and saved_models/text_cnn.vocab.txt (one token per line; id 0
is padding, 1 out-of-vocabulary) and prints the held-out accuracy.

Run: .venv/bin/python examples/train_text.py   (under a minute on 2 cores)
"""

import argparse

import keras
from _setup import add_quick_flag, deterministic

import keras_dance as kd


def text_cnn(vocabulary_size, length=16, dimensions=32, filters=24):
    ids = keras.Input((length,), dtype="int32", name="tokens")
    embedded = keras.layers.Embedding(vocabulary_size, dimensions, name="embedding")(ids)
    pooled = [keras.layers.GlobalMaxPooling1D(name=f"pool{width}")(
        keras.layers.Conv1D(filters, width, activation="relu", name=f"conv{width}")(embedded))
        for width in (3, 4, 5)]
    joined = keras.layers.Concatenate(name="features")(pooled)
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(
        keras.layers.Dropout(0.3, name="dropout")(joined))
    return keras.Model(ids, outputs, name="text_cnn")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(kd.datasets.SAVED_MODELS / "text_cnn.keras"))
    add_quick_flag(parser)
    args = parser.parse_args()
    deterministic(0)
    x, y, _ = kd.datasets.make_sentiment(300 if args.quick else 8000, seed=1)
    x_test, y_test, _ = kd.datasets.make_sentiment(1000, seed=2)
    model = text_cnn(len(kd.datasets.SENTIMENT_VOCABULARY))
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=1 if args.quick else 8, verbose=2, shuffle=True)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    model.save(args.out)
    vocabulary = args.out.removesuffix(".keras") + ".vocab.txt"
    with open(vocabulary, "w") as handle:
        handle.write("\n".join(kd.datasets.SENTIMENT_VOCABULARY) + "\n")
    print(f"text_cnn: {model.count_params()} parameters, held-out accuracy {accuracy:.4f} "
          f"on {len(y_test)} sentences -> {args.out}, {vocabulary}")


if __name__ == "__main__":
    main()
